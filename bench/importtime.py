"""Cold-start figure: time to import each Lambda handler module, from `python -X importtime` in fresh interpreters.

Usage: python bench/importtime.py [--python PATH] [--repeat 5] [--env lambda|local] [--cold-pyc]

Each run is a new process, so nothing is cached in memory; .pyc files on disk are (unless --cold-pyc). The
target of the issue is the cumulative import time of the handler module (`app`) at most 300 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = ROOT / "layers" / "acme_renewer"
FUNCTIONS_DIR = ROOT / "functions"
HANDLERS = ("renewal", "stream")
TARGET_MS = 300.0

# What the handlers read at import, with template.yaml's Globals (stand-in values where a !Ref would be).
TEMPLATE_ENV = {
    "POWERTOOLS_SERVICE_NAME": "acme-renewer",
    "POWERTOOLS_METRICS_NAMESPACE": "AcmeRenewer",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "TABLE_NAME": "bench-certificates",
    "ACME_DIRECTORY_URL": "https://acme-staging-v02.api.letsencrypt.org/directory",
    "ACME_CONTACT_EMAIL": "",
    "SECRET_PREFIX": "acme-renewer/",
    "SECRETS_KMS_KEY_ID": "",
    "EVENT_BUS_NAME": "default",
    "EXPIRY_WARNING_DAYS": "21",
    "AWS_REGION": "eu-west-1",
    "AWS_DEFAULT_REGION": "eu-west-1",
}

# What the Lambda runtime adds. Powertools' Tracer (and the X-Ray recorder) look at LAMBDA_TASK_ROOT: outside
# Lambda the Tracer disables itself and X-Ray builds a centralized sampler (two botocore clients, ~90 ms) that
# Lambda never builds; inside, the Tracer patches boto3/botocore/requests at import. Only "lambda" is realistic.
LAMBDA_ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "acme-renewer-bench",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
    "_HANDLER": "app.lambda_handler",
    "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
    "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
}

# Installed in the dev venv but not in the Lambda python3.13 runtime nor in our layer; botocore and s3transfer
# import it when present (~40 ms), so a local figure would overstate Lambda's.
DEFAULT_ABSENT = ("awscrt",)


@dataclass(frozen=True)
class ImportLine:
    name: str
    depth: int
    self_us: int
    cumulative_us: int
    ours: str  # nearest ancestor (or itself) that is our code: "app" or "acme_renewer.*"


def parse_importtime(stderr: str) -> list[ImportLine]:
    """Parse `-X importtime` lines ("import time: self [us] | cumulative | imported package")."""
    raw: list[tuple[str, int, int, int]] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        fields = line[len("import time:") :].split("|")
        if len(fields) != 3:
            continue
        label = fields[2].rstrip()
        name = label.lstrip(" ")
        depth = (len(label) - len(name) - 1) // 2
        raw.append((name, depth, int(fields[0]), int(fields[1])))
    # The output is post-order: a module's parent is the next line with a smaller depth.
    parents: list[int | None] = [None] * len(raw)
    stack: list[int] = []
    for index in range(len(raw) - 1, -1, -1):
        depth = raw[index][1]
        while stack and raw[stack[-1]][1] >= depth:
            stack.pop()
        parents[index] = stack[-1] if stack else None
        stack.append(index)

    def ours(index: int | None) -> str:
        while index is not None:
            name = raw[index][0]
            if name == "app" or name.startswith("acme_renewer"):
                return name
            index = parents[index]
        return "-"

    return [ImportLine(n, d, s, c, ours(i)) for i, (n, d, s, c) in enumerate(raw)]


@dataclass(frozen=True)
class Setup:
    python: str
    mode: str  # "lambda" or "local"
    absent: tuple[str, ...]
    package_dir: Path


def run_env(setup: Setup, function_dir: Path, pycache_prefix: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "AWS_", "POWERTOOLS_", "LAMBDA_"))}
    env.update(TEMPLATE_ENV)
    if setup.mode == "lambda":
        env.update(LAMBDA_ENV)
        env["LAMBDA_TASK_ROOT"] = str(function_dir)
    # Lambda's order: the function's code first, then the layers (/opt/python).
    env["PYTHONPATH"] = os.pathsep.join([str(function_dir), str(setup.package_dir)])
    if pycache_prefix is not None:
        env["PYTHONPYCACHEPREFIX"] = str(pycache_prefix)
    return env


def import_code(absent: Sequence[str]) -> str:
    # A None entry in sys.modules makes `import x` raise ImportError, as if x were not installed.
    hide = "".join(f"sys.modules[{name!r}] = None; " for name in absent)
    return f"import sys; {hide}import app"


def run_once(setup: Setup, function_dir: Path, prefix: Path | None) -> list[ImportLine]:
    result = subprocess.run(
        [setup.python, "-X", "importtime", "-c", import_code(setup.absent)],
        cwd=function_dir,
        env=run_env(setup, function_dir, prefix),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(f"import failed for {function_dir} with {setup.python}:\n{result.stderr[-3000:]}")
    return parse_importtime(result.stderr)


# In Lambda these come from the runtime (compiled); the Makefile keeps them out of DepsLayer.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "dateutil", "six")


def site_packages(setup: Setup) -> list[Path]:
    code = "import json, sysconfig; print(json.dumps([sysconfig.get_path('purelib'), sysconfig.get_path('platlib')]))"
    run = subprocess.run([setup.python, "-c", code], capture_output=True, text=True, check=True)
    return [Path(p).resolve() for p in json.loads(run.stdout)]


def stdlib_only_prefix(setup: Setup, function_dir: Path, base: Path) -> Path:
    """A pycache prefix without .pyc for our code and the layer's packages, as in Lambda: the layers are built
    without .pyc (see the Makefiles) and /opt is read-only, while the runtime's stdlib and boto3 come compiled."""
    run_once(setup, function_dir, base)
    sites = site_packages(setup)
    ours = [ROOT, setup.package_dir, function_dir]
    for pyc in list(base.rglob("*.pyc")):
        source = Path(pyc.anchor, *pyc.relative_to(base).parts)
        site = next((s for s in sites if source.is_relative_to(s)), None)
        if site is not None:
            if source.relative_to(site).parts[0].split(".")[0] not in RUNTIME_PROVIDED:
                pyc.unlink()
        elif any(source.is_relative_to(root) for root in ours):
            pyc.unlink()
    return base


def table(title: str, rows: Sequence[Sequence[str]], header: Sequence[str]) -> None:
    """Print an aligned table; columns whose header ends in "ms" are right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(title)
    for row in [header, *rows]:
        cells = [c.rjust(w) if h.endswith("ms") else c.ljust(w) for c, w, h in zip(row, widths, header, strict=True)]
        print("  " + "  ".join(cells).rstrip())


def measure(args: argparse.Namespace, setup: Setup, name: str, function_dir: Path) -> float:
    runs: list[list[ImportLine]] = []
    walls: list[float] = []
    with tempfile.TemporaryDirectory(prefix="importtime-") as tmp:
        base = None
        if args.cold_pyc:
            base = stdlib_only_prefix(setup, function_dir, Path(tmp) / "base")
        else:
            run_once(setup, function_dir, None)  # warm-up: writes missing .pyc
        for i in range(args.repeat):
            prefix = None
            if base is not None:
                prefix = Path(tmp) / f"run{i}"
                shutil.copytree(base, prefix)
            started = time.perf_counter()
            runs.append(run_once(setup, function_dir, prefix))
            walls.append((time.perf_counter() - started) * 1000)

    totals = [next(line.cumulative_us for line in run if line.name == "app" and line.depth == 0) / 1000 for run in runs]
    print(
        f"\n== {name}: {function_dir}/app.py with {setup.package_dir}  ({setup.python}, env={setup.mode}, "
        f"{'no .pyc for ours and the layer' if args.cold_pyc else '.pyc cached'}, absent={list(setup.absent)})"
    )
    verdict = "meets" if statistics.median(totals) <= TARGET_MS else "misses"
    print(
        f"import app: median {statistics.median(totals):.0f} ms, min {min(totals):.0f} ms, "
        f"max {max(totals):.0f} ms over {len(totals)} runs; {verdict} the {TARGET_MS:.0f} ms target "
        f"by {abs(TARGET_MS - statistics.median(totals)):.0f} ms "
        f"(whole process, start-up included: median {statistics.median(walls):.0f} ms wall)"
    )

    cumulative: dict[str, list[int]] = defaultdict(list)
    own: dict[str, list[int]] = defaultdict(list)
    via: dict[str, str] = {}
    packages: dict[str, list[int]] = defaultdict(list)
    for run in runs:
        per_run_cum: dict[str, int] = {}
        per_run_self: dict[str, int] = defaultdict(int)
        per_package: dict[str, int] = defaultdict(int)
        app_seen = False
        for line in run:
            # Interpreter start-up (site, encodings) is printed before and outside `app`; skip it.
            if line.ours == "-":
                continue
            app_seen = True
            per_run_cum[line.name] = max(per_run_cum.get(line.name, 0), line.cumulative_us)
            per_run_self[line.name] += line.self_us
            per_package[line.name.split(".")[0]] += line.self_us
            via.setdefault(line.name, line.ours)
        assert app_seen
        for key, value in per_run_cum.items():
            cumulative[key].append(value)
            own[key].append(per_run_self[key])
        for key, value in per_package.items():
            packages[key].append(value)

    def med_ms(values: list[int]) -> float:
        return statistics.median(values) / 1000

    top = sorted(cumulative, key=lambda k: med_ms(cumulative[k]), reverse=True)
    top = [k for k in top if k != "app"][: args.top]
    app_self = statistics.median(next(line.self_us for line in run if line.name == "app") for run in runs) / 1000
    print(f"app's own module-level code (Logger, Tracer incl. X-Ray patching, Metrics...): {app_self:.1f} ms self")
    title = "modules by cumulative time (median ms; 'ours': our module under which it was first imported)"
    table(
        f"top {args.top} {title}",
        [(f"{med_ms(cumulative[k]):.1f}", f"{med_ms(own[k]):.1f}", k, via[k]) for k in top],
        ("cum ms", "self ms", "module", "ours"),
    )
    top_packages = sorted(packages, key=lambda k: med_ms(packages[k]), reverse=True)[: args.top]
    table(
        f"top {args.top} top-level packages by summed self time (median ms)",
        [(f"{med_ms(packages[k]):.1f}", k, "") for k in top_packages],
        ("self ms", "package", ""),
    )
    return statistics.median(totals)


def default_python() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--python",
        default=default_python(),
        help="interpreter to measure (default: .venv); e.g. .venv313/bin/python for Lambda's 3.13",
    )
    parser.add_argument("--repeat", "-r", type=int, default=5, help="fresh interpreters per handler (default 5)")
    parser.add_argument("--top", type=int, default=15, help="rows in the module tables (default 15)")
    parser.add_argument(
        "--handler",
        choices=sorted(HANDLERS),
        action="append",
        help="measure only this handler (repeatable; default: all)",
    )
    parser.add_argument(
        "--env",
        choices=("lambda", "local"),
        default="lambda",
        help="lambda (default): add the runtime's variables, so Tracer and X-Ray behave as deployed; "
        "local: template variables only (Tracer disabled, X-Ray builds its daemon sampler)",
    )
    parser.add_argument(
        "--absent",
        action="append",
        default=None,
        metavar="MODULE",
        help=f"make MODULE unimportable (repeatable; default: {', '.join(DEFAULT_ABSENT)}, which the "
        "Lambda runtime lacks); --absent '' hides nothing",
    )
    parser.add_argument(
        "--cold-pyc",
        action="store_true",
        help="no .pyc for our code and the layer's packages, as deployed (layers are built without .pyc and /opt "
        "is read-only); stdlib and the runtime's boto3/botocore keep theirs",
    )
    parser.add_argument(
        "--package-dir",
        type=Path,
        default=PACKAGE_DIR,
        help="directory holding acme_renewer/ (default: layers/acme_renewer); point it at an edited copy to "
        "measure a change before making it",
    )
    parser.add_argument(
        "--functions-dir",
        type=Path,
        default=FUNCTIONS_DIR,
        help="directory holding <handler>/app.py (default: functions)",
    )
    args = parser.parse_args(argv)
    absent = tuple(a for a in (DEFAULT_ABSENT if args.absent is None else args.absent) if a)
    # Runs start in the function's directory: a relative interpreter path is made absolute (not resolved, which
    # would step out of a venv).
    python = os.path.abspath(args.python) if os.sep in args.python else args.python
    setup = Setup(python, args.env, absent, args.package_dir.resolve())
    medians = {
        name: measure(args, setup, name, (args.functions_dir / name).resolve()) for name in (args.handler or HANDLERS)
    }
    print(
        "\nsummary (median ms): " + ", ".join(f"{k} {v:.0f}" for k, v in medians.items()) + f"; target {TARGET_MS:.0f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
