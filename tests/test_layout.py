"""The layout the README promises: a plain-Python engine under thin Dagster layers."""

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parent.parent / "obs_pipelines"
# definitions.py composes the Dagster layers; the CLI's run-launching commands (launch.py, which
# cli.py calls) import Dagster.
DAGSTER_ALLOWED = {"definitions.py", "cli.py", "launch.py"}


def dagster_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        found += [f"{path.relative_to(ENGINE)}:{node.lineno} {n}" for n in names]
    return [f for f in found if f.split(" ")[1].split(".")[0] in ("dagster", "assets", "sensors")]


def test_the_engine_imports_neither_dagster_nor_its_layers() -> None:
    offenders = [
        line
        for path in sorted(ENGINE.rglob("*.py"))
        if path.name not in DAGSTER_ALLOWED or path.parent != ENGINE
        for line in dagster_imports(path)
    ]
    assert offenders == []


def test_production_code_uses_no_assert_for_control_flow() -> None:
    roots = [ENGINE, ENGINE.parent / "assets", ENGINE.parent / "sensors"]
    asserts = [
        f"{path.name}:{node.lineno}"
        for root in roots
        for path in sorted(root.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Assert)
    ]
    assert asserts == []
