#!/usr/bin/env bash
# Static security checks of template.yaml with checkov; the checks skipped, and why, are in .checkov.yaml.
# Installs nothing. checkov pins an old boto3 of its own, so it lives in a venv of its own, not in .venv:
#   python3 -m venv .venv-checkov && .venv-checkov/bin/pip install -r .ci/checkov-requirements.txt
#
# Environment:
#   CHECKOV   the checkov executable (default: .venv-checkov/bin/checkov)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
checkov="${CHECKOV:-$PWD/.venv-checkov/bin/checkov}"
[[ -x $checkov ]] || { echo "checkov: $checkov not found; create .venv-checkov first (see this script)" >&2; exit 1; }

t0=$(date +%s.%N)
"$checkov" --config-file .checkov.yaml
echo "checkov: template.yaml ok in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
