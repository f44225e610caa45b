"""The floors of the house import downwards only (STYLE.md: "The kernel starts nobody").

    cctv_cli, benchmarks       entry points: the command line, the demo, the benchmarks
    services, stream_processors   the processes; neither imports the other
    cctv                       the kernel every process shares
    schemas                    the contracts
    infra                      the local servers, on their own

Every `import` and `from ... import` in the source (including those inside functions, which
are how a cycle usually sneaks in) is read with `ast`, without importing anything, so a new
cycle between floors fails here instead of at a confusing import time.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

ENTRY_POINTS = {"cctv_cli", "benchmarks"}
# Which project packages each package may import (itself always). Entry points may import
# every floor; nothing may import an entry point.
ALLOWED: dict[str, set[str]] = {
    "schemas": set(),
    "cctv": {"schemas"},
    "services": {"cctv", "schemas"},
    "stream_processors": {"cctv", "schemas"},
    "infra": set(),
    "cctv_cli": {"cctv", "schemas", "services", "stream_processors", "infra"},
    "benchmarks": {"cctv", "schemas", "services", "stream_processors", "infra"},
}
PROJECT = set(ALLOWED) | {"tests"}


def project_imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import of a project package in `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:  # relative imports stay inside their own package
            continue
        found += [(node.lineno, name.split(".")[0]) for name in names]
    return [(line, top) for line, top in found if top in PROJECT]


def sources(package: str) -> list[Path]:
    return sorted((REPO_ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_the_floors_below_it(package: str) -> None:
    files = sources(package)
    assert files, f"{package}/ has no Python files: update ALLOWED"
    allowed = ALLOWED[package] | {package}
    violations = [
        f"{path.relative_to(REPO_ROOT)}:{line} imports {top}"
        for path in files
        for line, top in project_imports(path)
        if top not in allowed
    ]
    assert not violations, "\n".join(violations)


def test_every_top_level_package_has_a_floor() -> None:
    packages = {
        path.parent.name
        for path in REPO_ROOT.glob("*/__init__.py")
        if not path.parent.name.startswith(".")
    }
    assert packages - {"tests"} <= set(ALLOWED), f"no floor for {packages - set(ALLOWED)}"


def test_the_kernel_and_the_processes_never_reach_an_entry_point() -> None:
    """Spelled out for the reader: the rules above imply it."""
    for package in ("cctv", "schemas", "services", "stream_processors", "infra"):
        assert not ALLOWED[package] & ENTRY_POINTS
    assert "services" not in ALLOWED["stream_processors"]
    assert "stream_processors" not in ALLOWED["services"]
    assert not ALLOWED["cctv"] & {"services", "stream_processors"}


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "import json\nfrom . import sibling\n"
        "def f():\n    from services.sink.run import main\n    import cctv_cli.main\n",
        encoding="utf-8",
    )
    assert project_imports(module) == [(4, "services"), (5, "cctv_cli")]
