"""Mutual TLS against real servers: a throwaway CA signs a server and a client certificate, and a
real Alertmanager and Prometheus require and verify the client's (``--web.config.file`` with
``client_auth_type: RequireAndVerifyClientCert``). Every HTTP client of ours that may talk to
them (notifications, the Alertmanager source, doctor, the Prometheus ingest) gets through with
the certificate configured and fails with one line without it."""

import ipaddress
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import certifi
import pytest
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from dagster import DagsterInstance, build_sensor_context

from assets.resources import ObsResource
from obs_pipelines.config import (
    AlertmanagerSourceConfig,
    PrometheusSourceConfig,
    Tls,
    load_config,
)
from obs_pipelines.definitions import build_definitions
from obs_pipelines.errors import ConfigError, SourceError
from obs_pipelines.lake.catalog import connect
from obs_pipelines.operations.doctor import run_checks
from obs_pipelines.operations.freshness import PrometheusQuery
from obs_pipelines.operations.notify import Alert, Alertmanager, NotifyError
from obs_pipelines.sources.alertmanager import AlertmanagerAlerts
from obs_pipelines.sources.http import elasticsearch_options, http_session
from obs_pipelines.sources.prometheus import PrometheusSource
from obs_pipelines.windows import HOUR, TimeWindow, floor_hour
from tests import servers
from tests.dagster_runs import run_ingest
from tests.history import HOUR_MS, START, START_MS
from tests.test_prometheus_ingest import HISTORY, SELECTORS, expected_samples, lake_samples

# --- a throwaway PKI ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path  # a client certificate from a CA the servers do not trust
    stranger_key: Path

    def tls(self, *, client: bool = True, stranger: bool = False) -> dict[str, str]:
        """A ``tls`` config section trusting our CA, with our (or the stranger's) certificate."""
        section = {"ca_file": str(self.ca)}
        if client:
            cert, key = (
                (self.stranger_cert, self.stranger_key)
                if stranger
                else (self.client_cert, self.client_key)
            )
            section |= {"client_cert": str(cert), "client_key": str(key)}
        return section


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    usage: x509.ObjectIdentifier | None,
) -> x509.Certificate:
    """A certificate for ``key``: a self-signed CA when ``issuer`` is None, else a leaf for
    ``usage`` (server or client authentication) signed by ``issuer``."""
    now = datetime.now(UTC)
    issuer_name, signing_key = (issuer[0].subject, issuer[1]) if issuer else (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()),
            critical=False,
        )
    )
    if issuer is None:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
    return builder.sign(signing_key, hashes.SHA256())


def _write(folder: Path, name: str, cert: x509.Certificate, key: Any) -> tuple[Path, Path]:
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def make_pki(folder: Path) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    keys = {
        name: ec.generate_private_key(ec.SECP256R1()) for name in ("ca", "other", "s", "c", "x")
    }
    ca = _certificate("obs test CA", keys["ca"], None, None)
    other_ca = _certificate("someone else's CA", keys["other"], None, None)
    server = _certificate("127.0.0.1", keys["s"], (ca, keys["ca"]), ExtendedKeyUsageOID.SERVER_AUTH)
    client = _certificate(
        "obs-pipelines", keys["c"], (ca, keys["ca"]), ExtendedKeyUsageOID.CLIENT_AUTH
    )
    stranger = _certificate(
        "obs-pipelines", keys["x"], (other_ca, keys["other"]), ExtendedKeyUsageOID.CLIENT_AUTH
    )
    ca_path = folder / "ca.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server_paths = _write(folder, "server", server, keys["s"])
    client_paths = _write(folder, "client", client, keys["c"])
    stranger_paths = _write(folder, "stranger", stranger, keys["x"])
    return Pki(ca_path, *server_paths, *client_paths, *stranger_paths)


def web_config(pki: Pki, folder: Path) -> Path:
    """The exporter-toolkit web config both servers read: TLS with a verified client cert."""
    path = folder / "web.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "tls_server_config": {
                    "cert_file": str(pki.server_cert),
                    "key_file": str(pki.server_key),
                    "client_auth_type": "RequireAndVerifyClientCert",
                    "client_ca_file": str(pki.ca),
                }
            }
        )
    )
    return path


@contextmanager
def serving_mtls(command: list[str], port: int, pki: Pki) -> Iterator[str]:
    """``servers.running`` for an HTTPS server requiring client certificates; yields its URL."""
    url = f"https://127.0.0.1:{port}"

    def ready(process: Any) -> None:
        servers.wait_until(lambda: _answers(url, pki), process, f"mTLS server on {port}")

    with servers.running(command, ready):
        yield url


def _answers(url: str, pki: Pki) -> bool:
    try:
        cert = (str(pki.client_cert), str(pki.client_key))
        return requests.get(f"{url}/-/ready", cert=cert, verify=str(pki.ca), timeout=1).ok
    except requests.RequestException:
        return False


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def mtls_alertmanager(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Alertmanager that accepts only clients with a certificate from our CA."""
    folder = tmp_path_factory.mktemp("am-mtls")
    (folder / "alertmanager.yml").write_text(
        "route:\n  receiver: hook\n  group_wait: 1s\nreceivers:\n  - name: hook\n"
    )
    port = servers.free_port()
    command = [
        servers.require("prometheus-alertmanager", "prometheus-alertmanager"),
        f"--config.file={folder / 'alertmanager.yml'}",
        f"--storage.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--web.config.file={web_config(pki, folder)}",
        "--cluster.listen-address=",
    ]
    with serving_mtls(command, port, pki) as url:
        yield url


@pytest.fixture(scope="module")
def mtls_prometheus(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus, backfilled with the ingest tests' history, that accepts only clients
    with a certificate from our CA."""
    folder = tmp_path_factory.mktemp("prom-mtls")
    servers.backfill(folder / "data", HISTORY)
    (folder / "prometheus.yml").write_text("global:\n  scrape_interval: 15s\n")
    port = servers.free_port()
    command = [
        servers.require("prometheus", "prometheus"),
        f"--config.file={folder / 'prometheus.yml'}",
        f"--storage.tsdb.path={folder / 'data'}",
        "--storage.tsdb.retention.time=3650d",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--web.config.file={web_config(pki, folder)}",
    ]
    with serving_mtls(command, port, pki) as url:
        yield url


def _one_line(message: str) -> str:
    assert "\n" not in message and "Traceback" not in message
    return message


def _alerts_seen_by(url: str, pki: Pki) -> list[dict[str, Any]]:
    """Alertmanager's own API, asked directly (not through our client)."""
    response = requests.get(
        f"{url}/api/v2/alerts",
        cert=(str(pki.client_cert), str(pki.client_key)),
        verify=str(pki.ca),
        timeout=5,
    )
    response.raise_for_status()
    return response.json()


def _alert(name: str, now: datetime) -> Alert:
    return Alert(
        labels={"alertname": name, "service": "checkout", "severity": "warning"},
        starts_at=now,
        ends_at=now + timedelta(minutes=10),
    )


def _this_hour(now: datetime) -> TimeWindow:
    return TimeWindow(floor_hour(now), floor_hour(now) + HOUR)


# --- notifications --------------------------------------------------------------------------


@pytest.mark.integration
def test_the_freshness_sensor_posts_its_breach_through_mutual_tls(
    pki: Pki,
    mtls_alertmanager: str,
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A CA bundle in the environment must not replace the CA file the config names.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    monkeypatch.setenv("CURL_CA_BUNDLE", certifi.where())
    current = floor_hour(datetime.now(UTC))
    config_path = write_config(
        ingest={"start": (current - 6 * HOUR).isoformat()},
        freshness={"metric_samples": "2h"},
        sources={"alertmanager": {"url": mtls_alertmanager, "tls": pki.tls()}},
    )
    defs = build_definitions(str(config_path))
    obs = ObsResource(config_path=str(config_path))
    context = build_sensor_context(
        instance=DagsterInstance.ephemeral(), resources={"obs": obs}, definitions=defs
    )

    result = defs.resolve_sensor_def("lake_freshness_sensor")(context)

    assert len(result.run_requests) == 4  # the due hours of the empty lake
    stale = [a for a in _alerts_seen_by(mtls_alertmanager, pki) if a["labels"].get("obs_check")]
    assert [(a["labels"]["alertname"], a["labels"]["dataset"]) for a in stale] == [
        ("ObsLakeDatasetStale", "metric_samples")
    ]
    assert stale[0]["status"]["state"] == "active"


@pytest.mark.integration
@pytest.mark.parametrize("client", ["none", "stranger"])
def test_a_notification_without_a_trusted_client_certificate_is_one_line(
    pki: Pki, mtls_alertmanager: str, client: str
) -> None:
    config = AlertmanagerSourceConfig(
        url=mtls_alertmanager, tls=pki.tls(client=client != "none", stranger=True)
    )
    scope = {"obs_check": "lake_freshness"}

    with pytest.raises(NotifyError) as refused:
        Alertmanager.from_config(config).reconcile([], scope, datetime.now(UTC))

    assert re.fullmatch(
        r"TLS to Alertmanager at https://127\.0\.0\.1:\d+ failed \(the server .*client "
        r"certificate it trusts.*\); check sources\.alertmanager\.tls: .*client_cert and client_key",
        _one_line(str(refused.value)),
    ), refused.value


@pytest.mark.integration
def test_without_our_ca_the_server_certificate_is_not_trusted(
    pki: Pki, mtls_alertmanager: str
) -> None:
    config = AlertmanagerSourceConfig(
        url=mtls_alertmanager,
        tls={"client_cert": str(pki.client_cert), "client_key": str(pki.client_key)},
    )
    with pytest.raises(NotifyError, match=r"certificate verify failed"):
        Alertmanager.from_config(config).ready()


# --- the Alertmanager source and doctor -----------------------------------------------------


@pytest.mark.integration
def test_the_alertmanager_source_snapshots_alerts_through_mutual_tls(
    pki: Pki, mtls_alertmanager: str
) -> None:
    config = AlertmanagerSourceConfig(url=mtls_alertmanager, tls=pki.tls())
    now = datetime.now(UTC)
    Alertmanager.from_config(config).post([_alert("MtlsSnapshot", now)])

    table = next(AlertmanagerAlerts(config, snapshot_at=now).read(_this_hour(now)))

    rows = [r for r in table.to_pylist() if r["alertname"] == "MtlsSnapshot"]
    assert [(r["state"], r["service"], r["receivers"]) for r in rows] == [
        ("active", "checkout", ["hook"])
    ]
    without = AlertmanagerSourceConfig(url=mtls_alertmanager, tls=pki.tls(client=False))
    with pytest.raises(SourceError) as refused:
        next(AlertmanagerAlerts(without, snapshot_at=now).read(_this_hour(now)))
    assert "client certificate it trusts" in _one_line(str(refused.value))


@pytest.mark.integration
def test_doctor_checks_an_alertmanager_behind_mutual_tls(
    pki: Pki, mtls_alertmanager: str, write_config: Callable[..., Path]
) -> None:
    def alertmanager_line(tls: dict[str, str]) -> Any:
        path = write_config(sources={"alertmanager": {"url": mtls_alertmanager, "tls": tls}})
        results = run_checks(load_config(path), timeout=5)
        return next(r for r in results if r.check == "source.alertmanager")

    trusted = alertmanager_line(pki.tls())
    refused = alertmanager_line(pki.tls(client=False))

    assert trusted.ok and re.match(r"Alertmanager 0\.\d+\.\d+ at https://", trusted.detail)
    assert not refused.ok
    assert "client certificate it trusts" in _one_line(refused.line())


# --- Prometheus -----------------------------------------------------------------------------


@pytest.mark.integration
def test_one_hour_is_ingested_exactly_from_a_prometheus_behind_mutual_tls(
    pki: Pki, mtls_prometheus: str, write_config: Callable[..., Path]
) -> None:
    section = {"url": mtls_prometheus, "selectors": SELECTORS, "tls": pki.tls()}
    config_path = write_config(sources={"metrics": "prometheus", "prometheus": section})

    result = run_ingest(config_path, "2026-11-10-01:00", "2026-11-10-01:00")

    assert result.success
    first, end = START_MS + HOUR_MS, START_MS + 2 * HOUR_MS
    stored = lake_samples(connect(load_config(config_path)), first, end)
    assert stored == expected_samples(first, end)
    assert sum(len(v) for v in stored.values()) > 0
    # The freshness sensor's instant queries share the session (prometheus-api-client's path).
    queue = PrometheusQuery(PrometheusSourceConfig(**section)).scalar(
        "count(queue_depth)", START + timedelta(minutes=90)
    )
    expected_queues = {k for k in expected_samples(first, end) if k[0] == "queue_depth"}
    assert queue == len(expected_queues)


@pytest.mark.integration
def test_a_prometheus_behind_mutual_tls_refuses_the_ingest_without_a_client_certificate(
    pki: Pki, mtls_prometheus: str
) -> None:
    config = PrometheusSourceConfig(
        url=mtls_prometheus, selectors=["up"], tls=pki.tls(client=False), retries=3
    )
    hour = TimeWindow(START, START + HOUR)

    with pytest.raises(SourceError) as refused:
        list(PrometheusSource(config).read_metrics(hour))

    message = _one_line(str(refused.value))
    assert message.startswith(f"TLS to Prometheus at {mtls_prometheus} failed (the server")
    assert "sources.prometheus.tls" in message


# --- one reading of the config for every client ---------------------------------------------


def test_a_missing_certificate_file_is_one_line_naming_the_key(tmp_path: Path) -> None:
    tls = Tls(client_cert=tmp_path / "gone.pem", client_key=tmp_path / "gone-key.pem")

    with pytest.raises(ConfigError) as missing:
        http_session("sources.jaeger", None, tls)

    assert _one_line(str(missing.value)).startswith(
        f"sources.jaeger.tls.client_cert: {tmp_path / 'gone.pem'} is not a readable file"
    )
    with pytest.raises(ConfigError, match=r"^sources\.elasticsearch\.tls\.client_key is set"):
        elasticsearch_options(
            "sources.elasticsearch",
            "https://es:9200",
            None,
            Tls(client_key=tmp_path / "gone-key.pem"),
        )


def test_requests_and_the_elasticsearch_client_get_the_same_tls(pki: Pki) -> None:
    tls = Tls.model_validate(pki.tls())

    session = http_session("sources.elasticsearch", None, tls)
    options = elasticsearch_options("sources.elasticsearch", "https://es:9200", None, tls)

    assert session.verify == options["ca_certs"] == str(pki.ca)
    assert session.cert == (options["client_cert"], options["client_key"])
    assert session.cert == (str(pki.client_cert), str(pki.client_key))
