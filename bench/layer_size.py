"""Size of DepsLayer: unzipped (the Lambda limit counts this) and zipped, with the largest distributions.

Usage: python bench/layer_size.py [--sam-build [DIR]] [--keep DIR] [--compile-with PYTHON313]

By default the layer is built as `sam build` builds it: `make build-DepsLayer` in layers/deps with ARTIFACTS_DIR
set to a temporary directory (cp313 manylinux aarch64 wheels, boto3/botocore removed). The issue's target is at most
30 MB unzipped.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import zipfile
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEPS_DIR = ROOT / "layers" / "deps"
TARGET_MB = 30.0
MB = 1024 * 1024


def files(root: Path) -> Iterator[Path]:
    for dirpath, _, filenames in os.walk(root):
        for filename in filenames:
            path = Path(dirpath, filename)
            if not path.is_symlink():
                yield path


def tree_size(root: Path) -> int:
    return sum(path.stat().st_size for path in files(root))


def zipped_size(root: Path, scratch: Path) -> int:
    """Deflate as `sam deploy` does (zipfile, ZIP_DEFLATED, paths relative to the layer root)."""
    archive = scratch / "layer.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(files(root)):
            zf.write(path, path.relative_to(root))
    size = archive.stat().st_size
    archive.unlink()
    return size


def by_distribution(site: Path) -> dict[str, int]:
    """Bytes per installed distribution, from each *.dist-info/RECORD; files no RECORD lists are '(unlisted)'.

    .pyc files count for the distribution that owns their source.
    """
    owner: dict[Path, str] = {}
    for record in site.glob("*.dist-info/RECORD"):
        name = record.parent.name.split("-")[0]
        for line in record.read_text().splitlines():
            relative = line.split(",")[0]
            if relative:
                owner[(site / relative).resolve()] = name
    sizes: dict[str, int] = defaultdict(int)
    for path in files(site):
        source = path.resolve()
        if source.parent.name == "__pycache__":  # x.cpython-313.pyc belongs to the owner of ../x.py
            source = source.parent.parent / (source.name.split(".")[0] + ".py")
        sizes[owner.get(source, "(unlisted)")] += path.stat().st_size
    return sizes


def build(artifacts: Path, layer_python: str) -> None:
    command = ["make", "-C", str(DEPS_DIR), "build-DepsLayer", f"ARTIFACTS_DIR={artifacts}"]
    result = subprocess.run(command, env={**os.environ, "LAYER_PYTHON": layer_python}, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")


def compile_pyc(site: Path, python: str) -> None:
    """Byte-compile with the runtime's version (3.13 .pyc are portable across x86_64 and arm64)."""
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if version != "(3, 13)":
        sys.exit(f"--compile-with needs a python3.13 (Lambda's runtime); {python} is {version}")
    subprocess.run([python, "-m", "compileall", "-q", "-j0", str(site)], check=True)


def report(layer_root: Path, top: int, scratch: Path) -> None:
    site = layer_root / "python"
    unzipped = tree_size(layer_root)
    zipped = zipped_size(layer_root, scratch)
    verdict = "meets" if unzipped / MB <= TARGET_MB else "misses"
    print(f"DepsLayer at {layer_root}")
    print(
        f"unzipped {unzipped / MB:.1f} MB ({verdict} the {TARGET_MB:.0f} MB target by "
        f"{abs(TARGET_MB - unzipped / MB):.1f} MB), zipped {zipped / MB:.1f} MB, "
        f"{sum(1 for _ in files(layer_root))} files (MB = 2**20 bytes of file content, not disk blocks)"
    )
    pyc = sum(p.stat().st_size for p in files(site) if p.suffix == ".pyc")
    if pyc:
        print(f"of which .pyc: {pyc / MB:.1f} MB")
    sizes = by_distribution(site)
    print(f"top {top} distributions by unzipped size:")
    for name, size in sorted(sizes.items(), key=lambda kv: kv[1], reverse=True)[:top]:
        print(f"  {size / MB:6.2f} MB  {100 * size / unzipped:4.1f}%  {name}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sam-build",
        nargs="?",
        const=str(ROOT / ".aws-sam" / "build" / "DepsLayer"),
        metavar="DIR",
        help="measure an existing `sam build` output instead of building (default DIR: .aws-sam/build/DepsLayer)",
    )
    parser.add_argument(
        "--layer-python", default=sys.executable, help="interpreter whose pip fetches the wheels (default: this one)"
    )
    parser.add_argument("--keep", metavar="DIR", help="build into DIR (kept) instead of a temporary directory")
    parser.add_argument(
        "--compile-with",
        metavar="PYTHON313",
        help="also byte-compile the layer with this python3.13 and report the size with .pyc included",
    )
    parser.add_argument("--top", type=int, default=10, help="distributions to list (default 10)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="layer-size-") as tmp:
        scratch = Path(tmp)
        if args.sam_build:
            layer_root = Path(args.sam_build)
            if not (layer_root / "python").is_dir():
                sys.exit(f"{layer_root}/python not found: run `sam build` first, or drop --sam-build")
        else:
            layer_root = Path(args.keep) if args.keep else scratch / "DepsLayer"
            layer_root.mkdir(parents=True, exist_ok=True)
            build(layer_root.resolve(), args.layer_python)
        report(layer_root, args.top, scratch)
        if args.compile_with:
            compile_pyc(layer_root / "python", args.compile_with)
            print("\nafter byte-compiling with python3.13:")
            report(layer_root, args.top, scratch)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
