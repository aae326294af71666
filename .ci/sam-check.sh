#!/usr/bin/env bash
# Offline checks of the SAM application: `sam validate --lint` (cfn-lint, bundled specs) and
# `sam build` (makefile builds of both layers, plain copy of the handler; no Docker, no AWS account,
# no local python3.13), then the unzipped size of DepsLayer against a limit.
#
# Environment:
#   SAM_BUILD_DIR      keep the build there (default: a temporary directory, removed on exit)
#   DEPS_LAYER_MAX_MB  fail when DepsLayer is larger, unzipped (default 30)
#   LAYER_PYTHON       interpreter whose pip fetches the layer wheels (default: the venv's)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
sam="$root/.venv/bin/sam"
[[ -x $sam ]] || { echo "sam-check: $sam not found; create the venv first" >&2; exit 1; }

export SAM_CLI_TELEMETRY=0
# Any python3 works for the layer: pip is asked for cp313/aarch64 wheels explicitly (layers/deps/Makefile).
# The venv's is used because a bare Debian python3 may come without pip.
export LAYER_PYTHON="${LAYER_PYTHON:-$root/.venv/bin/python}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
build_dir="${SAM_BUILD_DIR:-$work/build}"
max_mb="${DEPS_LAYER_MAX_MB:-30}"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

t0=$(now)
"$sam" validate --lint --template-file template.yaml
echo "sam-check: validate --lint ok in $(elapsed "$t0") s"

# Build output (pip's resolver chatter included) goes to a log shown only on failure.
t0=$(now)
if ! "$sam" build --template-file template.yaml --build-dir "$build_dir" --cache-dir "$work/cache" \
    >"$work/build.log" 2>&1; then
  cat "$work/build.log" >&2
  echo "sam-check: sam build failed" >&2
  exit 1
fi
echo "sam-check: build ok in $(elapsed "$t0") s -> $build_dir"

deps="$build_dir/DepsLayer/python"
renewer="$build_dir/RenewerLayer/python/acme_renewer"
[[ -f $renewer/__init__.py ]] || { echo "sam-check: RenewerLayer lacks acme_renewer/__init__.py" >&2; exit 1; }
for stage in inventory order dns stores delivery report cli; do
  [[ -f $renewer/$stage/__init__.py ]] || { echo "sam-check: RenewerLayer lacks acme_renewer/$stage/" >&2; exit 1; }
done
for pkg in acme josepy cryptography aws_lambda_powertools aws_xray_sdk; do
  [[ -d $deps/$pkg ]] || { echo "sam-check: DepsLayer lacks $pkg" >&2; exit 1; }
done
# The runtime provides these; a copy in the layer would shadow it.
for pkg in boto3 botocore s3transfer; do
  [[ ! -e $deps/$pkg ]] || { echo "sam-check: DepsLayer must not ship $pkg" >&2; exit 1; }
done
if find "$build_dir/DepsLayer" "$build_dir/RenewerLayer" -name __pycache__ -print -quit | grep -q .; then
  echo "sam-check: __pycache__ found in a layer" >&2
  exit 1
fi

size_kb=$(du -sk "$build_dir/DepsLayer" | cut -f1)
size_mb=$(awk -v k="$size_kb" 'BEGIN { printf "%.1f", k / 1024 }')
echo "sam-check: DepsLayer unzipped $size_mb MB (limit $max_mb MB); $(du -sh "$build_dir/DepsLayer" | cut -f1)"
if (( size_kb > max_mb * 1024 )); then
  echo "sam-check: DepsLayer exceeds $max_mb MB" >&2
  exit 1
fi
