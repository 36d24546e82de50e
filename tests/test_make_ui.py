"""`make ui` as a new user meets it: the UI answers, nothing on the terminal is a warning, and
Ctrl-C stops the webserver, the daemon and their code servers."""

import os
import signal
import subprocess
import time
from contextlib import suppress
from pathlib import Path

import pytest
import requests

from tests.servers import free_port, stop, wait_until_ready

pytestmark = pytest.mark.integration  # runs make ui: the Dagster webserver and daemon

REPO = Path(__file__).resolve().parent.parent


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_make_ui_serves_without_warnings_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"  # not the repository's own instance
    home.mkdir()
    (home / "dagster.yaml").symlink_to(REPO / "dagster.yaml")
    port = free_port()
    log = tmp_path / "ui.log"
    with log.open("wb") as out:
        # -o env: the venv is the one running this test; do not reinstall it.
        process = subprocess.Popen(
            ["make", "-s", "-o", "env", "ui", f"UI_PORT={port}", f"DAGSTER_HOME={home}"],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until_ready(f"http://127.0.0.1:{port}/server_info", process, timeout=120)
            assert requests.get(f"http://127.0.0.1:{port}/server_info", timeout=5).ok
            time.sleep(3)  # let the daemon report its start
            os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends the terminal's group
            process.wait(timeout=60)
            deadline = time.monotonic() + 30
            while _group_alive(process.pid) and time.monotonic() < deadline:
                time.sleep(0.5)
            left_running = _group_alive(process.pid)
        finally:
            stop(process, signal.SIGKILL)
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # whatever outlived make

    output = log.read_text(errors="replace")
    assert not left_running, output
    assert "Serving dagster-webserver" in output and "daemons:" in output
    noise = [line for line in output.splitlines() if "warn" in line.lower() or "dg dev" in line]
    assert noise == [], output
