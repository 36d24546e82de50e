"""Real servers for tests, started on 127.0.0.1 and stopped firmly afterwards.

Prometheus comes from Debian (the Makefile installs it); history is backfilled with promtool, as
an operator would. S3 is moto's server over real HTTP.
"""

import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_ready(url: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {process.returncode}")
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


@dataclass(frozen=True)
class Sample:
    ts_ms: int
    value: float


@dataclass(frozen=True)
class Series:
    metric: str
    labels: dict[str, str]
    samples: list[Sample]


def openmetrics_text(series: Iterable[Series]) -> str:
    """OpenMetrics exposition with explicit timestamps (in seconds, as promtool requires)."""
    lines: list[str] = []
    by_metric: dict[str, list[Series]] = {}
    for s in series:
        by_metric.setdefault(s.metric, []).append(s)
    for metric, members in by_metric.items():
        lines.append(f"# TYPE {metric} gauge")
        for s in members:
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(s.labels.items()))
            head = f"{metric}{{{labels}}}" if labels else metric
            lines += [
                f"{head} {_format_value(x.value)} {x.ts_ms // 1000}.{x.ts_ms % 1000:03d}"
                for x in s.samples
            ]
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def backfill(data_dir: Path, series: Iterable[Series]) -> None:
    """Write ``series`` into a Prometheus TSDB directory with promtool."""
    data_dir.mkdir(parents=True, exist_ok=True)
    source = data_dir.parent / f"{data_dir.name}.om"
    source.write_text(openmetrics_text(series))
    subprocess.run(
        [
            "promtool",
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--max-block-duration=48h",
            str(source),
            str(data_dir),
        ],
        check=True,
        capture_output=True,
    )


@contextmanager
def prometheus(data_dir: Path, *extra_args: str) -> Iterator[str]:
    """Run a real Prometheus over ``data_dir``; yields its base URL."""
    if shutil.which("prometheus") is None:
        raise RuntimeError(
            "prometheus is not installed; run `make servers` (Debian package prometheus)"
        )
    port = free_port()
    config = data_dir.parent / f"{data_dir.name}-prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\n")
    process = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={data_dir}",
            "--storage.tsdb.retention.time=3650d",
            f"--web.listen-address=127.0.0.1:{port}",
            *extra_args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(f"{url}/-/ready", process)
        yield url
    finally:
        stop(process)


@contextmanager
def moto_s3() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1; yields the endpoint URL."""
    port = free_port()
    binary = Path(sys.executable).with_name("moto_server")
    process = subprocess.Popen(
        [str(binary), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(f"{url}/moto-api/", process)
        yield url
    finally:
        stop(process)
