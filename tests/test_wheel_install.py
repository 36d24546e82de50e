"""A non-editable install works: the wheel ships the report SQL and the seed's rule files, and
`obs demo` and `obs report` run from it, outside the checkout.

This is the CI check for packaging (issue 12): `.ci/run` calls `make test`, which runs this file.
The wheel is built from a copy of the checkout's files (what a clean clone plus local changes holds,
so no stale `build/` of the working tree leaks in) and installed into a new venv outside the
checkout. Only the third-party dependencies come from the development venv, through a `.pth` line
(installing them from an index would take minutes): `obs_pipelines` itself is the wheel's copy.
"""

import json
import os
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest
import yaml

from obs_pipelines.config import SimulatorConfig
from obs_pipelines.errors import LakeError, SourceError
from obs_pipelines.reporting.reports import report_queries
from obs_pipelines.sources.simulated_alerts import SimulatedAlertFragments, rule_files

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("obs_pipelines", "assets", "sensors")
PIP = [sys.executable, "-m", "pip"]
VIEWS = "SELECT table_name FROM information_schema.tables WHERE table_type = 'VIEW'"


def run(
    args: list[str | Path], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def checkout_files() -> list[str]:
    """The checkout's files as a clean clone with the working tree's changes would hold them."""
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], REPO)
    return sorted(f for f in listed.stdout.split("\0") if f and (REPO / f).is_file())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The wheel `pip wheel --no-deps .` builds from the checkout, and the files it came from."""
    files = checkout_files()
    source = tmp_path_factory.mktemp("source")
    for name in files:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes((REPO / name).read_bytes())
    dist = tmp_path_factory.mktemp("dist")
    run([*PIP, "wheel", "--no-deps", "--quiet", "-w", dist, source], dist)
    (built,) = dist.glob("obs_pipelines-*.whl")
    return built, files


@pytest.fixture(scope="module")
def installed(wheel: tuple[Path, list[str]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv holding the wheel (its `bin/obs`); dependencies reach it through a .pth line."""
    venv = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", "--clear", "--without-pip", venv], venv)
    python = venv / "bin" / "python"
    run([*PIP, "--python", python, "install", "--quiet", "--no-deps", "--no-index", wheel[0]], venv)
    # After the install, so pip never sees the development venv's editable obs-pipelines. A path
    # in a .pth is only appended to sys.path: the .pth files there (the editable finder) stay off.
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], venv)
    Path(purelib.stdout.strip(), "_obs_test_dependencies.pth").write_text(
        sysconfig.get_path("purelib") + "\n"
    )
    return venv


def clean_env(home: Path) -> dict[str, str]:
    """The caller's environment without anything that points at the checkout."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "OBS_CONFIG"}
    }
    return {**env, "DAGSTER_HOME": str(home / "dagster_home")}


@pytest.mark.integration
def test_the_wheel_ships_every_report_rule_file_and_module(wheel: tuple[Path, list[str]]) -> None:
    built, files = wheel
    shipped = set(zipfile.ZipFile(built).namelist())

    reports = [f for f in files if f.startswith("sql/") and f.endswith(".sql")]
    rules = [f for f in files if f.startswith("rules/") and f.endswith(".yml")]
    modules = [
        f for f in files if f.startswith(tuple(f"{p}/" for p in PACKAGES)) and f.endswith(".py")
    ]
    assert reports and rules and modules
    assert [f for f in reports + rules if f"obs_pipelines/{f}" not in shipped] == []
    # A subpackage missing from pyproject's [tool.setuptools] packages list is missing here.
    assert [f for f in modules if f not in shipped] == []


@pytest.mark.integration
def test_the_installed_wheel_runs_the_demo_and_the_report_outside_the_checkout(
    installed: Path, tmp_path: Path
) -> None:
    config = tmp_path / "obs.yaml"
    config.write_text((REPO / "obs.yaml").read_text())  # lake: relative to it, so in tmp_path
    env = clean_env(tmp_path)
    obs = [installed / "bin" / "obs", "--config", config]

    where = run(
        [installed / "bin" / "python", "-c", "import obs_pipelines; print(obs_pipelines.__file__)"],
        tmp_path,
        env,
    )
    assert Path(where.stdout.strip()).is_relative_to(installed)

    started = time.monotonic()
    demo = run([*obs, "demo", "--days", "1"], tmp_path, env, timeout=600)
    demo_seconds = time.monotonic() - started
    report = run([*obs, "report"], tmp_path, env)
    views = run([*obs, "query", "--format", "json", VIEWS], tmp_path, env)
    slos = run(
        [*obs, "query", "--format", "json", "SELECT DISTINCT slo_name FROM slo_compliance"],
        tmp_path,
        env,
    )

    assert "Scorecard" in demo.stdout and "12 alerting rules" in demo.stdout, demo.stdout
    assert "Scorecard" in report.stdout and "System uptime" in report.stdout
    html = tmp_path / "reports" / "reliability.html"
    assert html.is_file() and "api_availability" in html.read_text()
    published = {row["table_name"] for row in json.loads(views.stdout)}
    assert {p.stem for p in (REPO / "sql").glob("*.sql")} <= published
    configured = {slo["name"] for slo in yaml.safe_load(config.read_text())["slos"]}
    assert {row["slo_name"] for row in json.loads(slos.stdout)} == configured
    print(f"obs demo --days 1 from the wheel: {demo_seconds:.0f} s")


def test_no_report_sql_in_the_package_is_an_error_not_an_empty_catalog(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert len(report_queries()) == len(list((REPO / "sql").glob("*.sql")))
    monkeypatch.setattr(
        "obs_pipelines.reporting.reports.SQL_PACKAGE", "obs_pipelines.not_installed"
    )

    with pytest.raises(LakeError) as missing:
        report_queries()
    with pytest.raises(LakeError) as empty:
        report_queries(tmp_path)

    assert str(missing.value) == (
        "no report SQL found in the installed package (obs_pipelines.not_installed); "
        "reinstall obs-pipelines"
    )
    assert str(empty.value) == f"no report SQL (*.sql) found in {tmp_path}; put the reports there"


def test_no_rule_files_in_the_package_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [f.name for f in rule_files()] == sorted(p.name for p in (REPO / "rules").glob("*.yml"))
    monkeypatch.setattr(
        "obs_pipelines.sources.simulated_alerts.RULES_PACKAGE", "obs_pipelines.not_installed"
    )

    with pytest.raises(SourceError) as missing:
        SimulatedAlertFragments(SimulatorConfig())

    assert str(missing.value) == (
        "no alert rule files (*.yml) found in the installed package "
        "(obs_pipelines.not_installed); reinstall obs-pipelines"
    )
