"""certbot and certbot-dns-route53 from PyPI, in a venv of their own next to ours.

They pin their own acme (and boto3), which must not move the versions the renewer is tested with, so they never go
into .venv. The venv is rebuilt when bench/requirements-certbot.txt changes. `python -m bench.certbot_venv` installs it.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REQUIREMENTS = BENCH_DIR / "requirements-certbot.txt"
DEFAULT_VENV = BENCH_DIR.parent / ".venv-bench-certbot"
# The requirements the venv was built from; a different file means a rebuild.
STAMP_NAME = ".bench-requirements.txt"


def certbot_executable(venv_dir: Path = DEFAULT_VENV) -> Path:
    return venv_dir / "bin" / "certbot"


def ensure_certbot_venv(venv_dir: Path = DEFAULT_VENV, requirements: Path = REQUIREMENTS) -> Path:
    """The certbot executable of `venv_dir`, installing the pinned requirements first if they are not there yet."""
    wanted = requirements.read_text()
    stamp = venv_dir / STAMP_NAME
    executable = certbot_executable(venv_dir)
    if executable.exists() and stamp.exists() and stamp.read_text() == wanted:
        return executable
    print(f"bench: installing {requirements.name} into {venv_dir}", file=sys.stderr)
    # Same interpreter as ours, so that both tools run on the same Python in the comparison.
    venv.EnvBuilder(with_pip=True, clear=stamp.exists()).create(venv_dir)
    pip = [str(venv_dir / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "install", "-r", str(requirements)], check=True)
    stamp.write_text(wanted)
    return executable


def certbot_version(executable: Path) -> str:
    """`certbot 5.8.0` as the tool reports itself."""
    done = subprocess.run([str(executable), "--version"], capture_output=True, text=True, check=True)
    return (done.stdout or done.stderr).strip()


if __name__ == "__main__":
    path = ensure_certbot_venv()
    print(certbot_version(path))
