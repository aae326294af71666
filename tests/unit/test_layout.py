"""The package's tree reads as the pipeline: a folder per stage, no import cycles, and the README's map is true."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
LAYER = REPO_ROOT / "layers" / "acme_renewer"
PACKAGE = LAYER / "acme_renewer"
STAGES = ("inventory", "order", "dns", "stores", "delivery", "report", "cli")


def module_name(path: Path) -> str:
    parts = path.relative_to(LAYER).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """The package's modules that `name` imports, TYPE_CHECKING imports included; a package's own parents aside."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("acme_renewer"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in MODULES)
    return {other for other in found if other in MODULES and not name.startswith(other + ".") and other != name}


def test_the_top_level_holds_the_pipeline_and_little_else() -> None:
    top = sorted(path.name for path in PACKAGE.glob("*.py") if path.name != "__init__.py")
    assert len(top) <= 8, top
    assert {"renewal.py", "batch.py", "runtime.py", "settings.py", "models.py", "errors.py"} <= set(top)
    assert sorted(path.parent.name for path in PACKAGE.glob("*/__init__.py")) == sorted(STAGES)


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_says_what_it_does_and_hands_on(stage: str) -> None:
    docstring = ast.get_docstring(ast.parse((PACKAGE / stage / "__init__.py").read_text()))
    assert docstring, f"{stage}/__init__.py has no docstring"
    assert len(docstring.splitlines()) >= 2


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = {name: imports_of(name) for name in MODULES}
    assert "acme_renewer.dns.challenge" in graph["acme_renewer.dns.route53"]  # the graph sees real imports
    cycles: list[list[str]] = []

    def visit(name: str, path: list[str], done: set[str]) -> None:
        for other in sorted(graph[name]):
            if other in path:
                cycles.append([*path[path.index(other) :], other])
            elif other not in done:
                visit(other, [*path, other], done)
        done.add(name)

    done: set[str] = set()
    for name in sorted(graph):
        if name not in done:
            visit(name, [name], done)
    assert cycles == []


def test_the_readme_map_names_every_module_in_its_folder() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index("## Repository layout") :]
    tree = section[section.index("acme_renewer/\n") :]
    tree = tree[: tree.index("```")]
    folders: dict[str, str] = {}
    current = ""
    for line in tree.splitlines()[1:]:
        heading = re.match(r"  (\w+)/", line)
        if heading:
            current = heading.group(1)
        elif not line.startswith("   "):
            current = ""
        folders[current] = folders.get(current, "") + line
    for name, path in MODULES.items():
        if path.name == "__init__.py":
            continue
        folder = path.parent.name if path.parent != PACKAGE else ""
        assert re.search(rf"\b{path.stem}(\.py)?\b", folders.get(folder, "")), f"README's layout misses {name}"
