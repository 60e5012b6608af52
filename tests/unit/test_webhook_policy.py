"""Webhook URL policy: static checks, address classes, and the connect-time check."""

from __future__ import annotations

import ipaddress
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from berth.core import errors
from berth.core.models import RunStatus
from berth.storage.base import Storage
from berth.storage.runs import Outcome
from berth.storage.webhooks import AttemptOutcome, WebhookStore, enqueue
from berth.webhooks import WebhookSettings
from berth.webhooks.delivery import Deliverer, backoff
from berth.webhooks.policy import Refused, UrlPolicy, classify, embedded_ipv4

DEFAULT = UrlPolicy()
LOOPBACK_OK = UrlPolicy(disable_loopback=False)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "cloud metadata"),
        ("64:ff9b::a00:1", "private"),
        ("2002:7f00:1::", "loopback"),
    ],
)
def test_classify(address: str, reason: str | None) -> None:
    assert classify(ipaddress.ip_address(address)) == reason


def test_embedded_ipv4() -> None:
    mapped = ipaddress.ip_address("::ffff:10.0.0.1")
    assert embedded_ipv4(mapped) == ipaddress.ip_address("10.0.0.1")
    plain = ipaddress.ip_address("2606:4700::1")
    assert embedded_ipv4(plain) is plain


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://example.com/x", "http"),
        ("example.com/x", "http"),
        ("https:///x", "no host"),
        ("http://exa mple.com/", "whitespace"),
        ("http://example.com:99999/", "malformed"),
        ("http://127.0.0.1/", "loopback"),
        ("http://localhost:8080/", "loopback"),
        ("http://api.localhost/", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://10.0.0.1/", "private"),
        ("http://169.254.169.254/", "cloud metadata"),
        ("http://metadata.google.internal/", "metadata"),
        ("http://[fe80::1%25eth0]/", "link-local"),
        ("/relative", "relative"),
    ],
)
def test_default_policy_refuses(url: str, fragment: str) -> None:
    with pytest.raises(Refused) as caught:
        DEFAULT.check_static(url)
    assert fragment in caught.value.message
    assert isinstance(caught.value, errors.InvalidInput)  # → 422


def test_public_url_passes() -> None:
    target = DEFAULT.check_static("https://Hooks.Example.com./path?q=1")
    assert target is not None
    assert (target.scheme, target.host, target.port) == ("https", "hooks.example.com", 443)
    assert DEFAULT.check_static("http://example.com:8080/").port == 8080  # type: ignore[union-attr]


def test_loopback_allowed_by_config() -> None:
    assert LOOPBACK_OK.check_static("http://127.0.0.1:9/x") is not None
    assert LOOPBACK_OK.check_static("http://localhost/x") is not None
    assert LOOPBACK_OK.check_static("/relative") is None
    # Loopback only: private networks and metadata stay closed.
    with pytest.raises(Refused):
        LOOPBACK_OK.check_static("http://10.0.0.1/")
    with pytest.raises(Refused):
        LOOPBACK_OK.check_static("http://169.254.169.254/")
    assert UrlPolicy(allow_private_networks=True).check_static("http://10.0.0.1/") is not None
    with pytest.raises(Refused, match="cloud metadata"):
        UrlPolicy(allow_private_networks=True).check_static("http://[fd00:ec2::254]/")


def test_https_domains_ports_and_length() -> None:
    policy = UrlPolicy.from_config(
        {
            "require_https": True,
            "allowed_domains": ["Hooks.example.com", "*.example.org"],
            "allowed_ports": [443, 8443],
            "max_url_length": 40,
        }
    )
    assert policy.check_static("https://hooks.example.com/x") is not None
    assert policy.check_static("https://a.example.org:8443/x") is not None
    assert policy.check_static("https://a.b.example.org/x") is not None
    for url, fragment in [
        ("http://hooks.example.com/x", "https"),
        ("https://example.org/x", "allowed_domains"),
        ("https://badexample.org/x", "allowed_domains"),
        ("https://hooks.example.com.evil.io/x", "allowed_domains"),
        ("https://hooks.example.com:444/x", "allowed_ports"),
        ("https://hooks.example.com/" + "a" * 20, "longer than 40"),
    ]:
        with pytest.raises(Refused, match=fragment):
            policy.check_static(url)


@pytest.mark.parametrize(
    "config",
    [
        {"require_https": "yes"},
        {"allowed_domains": "example.com"},
        {"allowed_ports": [0]},
        {"allowed_ports": ["443"]},
        {"max_url_length": 0},
        {"disable_loopback": 1},
    ],
)
def test_bad_config(config: dict[str, Any]) -> None:
    with pytest.raises(errors.ConfigError):
        UrlPolicy.from_config(config)


@pytest.mark.anyio
async def test_admit() -> None:
    assert await DEFAULT.admit(None) is None
    assert await UrlPolicy(muted=True).admit("http://127.0.0.1/") is None
    # Unresolvable now: let through, the connect-time check decides.
    assert await DEFAULT.admit("https://hooks.invalid/x") == "https://hooks.invalid/x"
    # A name (or numeric form) resolving to a refused address is refused at creation.
    with pytest.raises(Refused, match="loopback"):
        await DEFAULT.admit("http://2130706433/x")


@pytest.mark.anyio
async def test_resolve_checks_every_address() -> None:
    target = LOOPBACK_OK.check_static("http://localhost:80/")
    assert target is not None
    addresses = await LOOPBACK_OK.resolve(target)
    assert ipaddress.ip_address("127.0.0.1") in addresses
    with pytest.raises(Refused, match="localhost"):
        await DEFAULT.resolve(target)  # a static check skipped: resolution still refuses


def test_backoff_is_jittered_and_capped() -> None:
    samples = [backoff(3, 1.0, 60.0) for _ in range(200)]
    assert all(0 <= s <= 4.0 for s in samples)
    assert len(set(samples)) > 150
    assert all(backoff(20, 1.0, 5.0) <= 5.0 for _ in range(50))


# -- the connect-time check, through the real deliverer and a real database ------


class _Counting(ThreadingHTTPServer):
    hits = 0


@pytest.fixture
def receiver() -> Iterator[_Counting]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            server.hits += 1
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = _Counting(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


async def _deliver_once(
    tmp_path: Path, url: str, policy: UrlPolicy, transport: httpx.AsyncBaseTransport | None = None
) -> tuple[Any, Any]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    storage = Storage(f"sqlite:///{tmp_path / 'berth.db'}")
    await storage.open()
    try:
        now = datetime.now(UTC)
        run = {
            "run_id": "0190a4c2-0000-7000-8000-000000000001",
            "thread_id": "0190a4c2-0000-7000-8000-000000000002",
            "assistant_id": "0190a4c2-0000-7000-8000-000000000003",
            "created_at": now,
            "started_at": now,
            "metadata": {},
            "kwargs": {"webhook": url},
            "multitask_strategy": "enqueue",
            "temporary": True,
        }
        # Straight into the outbox: the creation-time check is bypassed on purpose.
        await storage.db.write(
            lambda conn: enqueue(conn, run, Outcome(status=RunStatus.SUCCESS), now)
        )
        store = WebhookStore(storage.db)
        deliverer = Deliverer(
            store=store,
            settings=WebhookSettings(policy=policy, max_attempts=3),
            self_url="http://127.0.0.1:1",
            recover_all=True,
            transport=transport,
        )
        await deliverer.start()
        try:
            (delivery,) = await store.claim_due(
                worker_id=deliverer.worker_id, limit=5, lease_seconds=60
            )
            outcome = await deliverer.deliver(delivery)
        finally:
            await deliverer.stop()
        return outcome, (await store.list(run_id=run["run_id"]))[0]
    finally:
        await storage.close()


@pytest.mark.anyio
async def test_connect_time_check_refuses_a_name_resolving_to_loopback(
    tmp_path: Path, receiver: _Counting
) -> None:
    url = f"http://localhost:{receiver.server_address[1]}/hook"
    outcome, (delivery, attempts) = await _deliver_once(tmp_path, url, DEFAULT)
    assert outcome == AttemptOutcome.FAILED
    assert delivery.status.value == "failed"
    (attempt,) = attempts
    assert attempt.status_code is None
    assert attempt.error.startswith("refused:") and "loopback" in attempt.error
    assert receiver.hits == 0  # no connection was made


@pytest.mark.anyio
async def test_connect_time_check_allows_when_configured(
    tmp_path: Path, receiver: _Counting
) -> None:
    url = f"http://localhost:{receiver.server_address[1]}/hook"
    outcome, (delivery, attempts) = await _deliver_once(tmp_path, url, LOOPBACK_OK)
    assert outcome == AttemptOutcome.DELIVERED
    assert delivery.status.value == "delivered"
    assert [(a.attempt, a.status_code) for a in attempts] == [(1, 204)]
    assert receiver.hits == 1


def _certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for the name `localhost` only (not 127.0.0.1)."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.mark.anyio
async def test_pinned_address_keeps_the_name_for_tls_and_host(tmp_path: Path) -> None:
    """Connecting to the checked IP must not weaken TLS: SNI, the certificate check and
    the Host header all still use the URL's name."""
    cert_file, key_file = _certificate(tmp_path)
    seen: dict[str, Any] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen["host"] = self.headers["Host"]
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)

    def on_sni(sock: Any, name: str | None, ctx: Any) -> None:
        seen["sni"] = name

    context.sni_callback = on_sni
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    trust = ssl.create_default_context(cafile=str(cert_file))
    try:
        outcome, (_, attempts) = await _deliver_once(
            tmp_path / "a",
            f"https://localhost:{port}/hook",
            LOOPBACK_OK,
            httpx.AsyncHTTPTransport(verify=trust),
        )
        assert outcome == AttemptOutcome.DELIVERED, attempts
        assert seen == {"sni": "localhost", "host": f"localhost:{port}"}
        # The certificate names localhost, not 127.0.0.1: verification is really on.
        outcome, (_, attempts) = await _deliver_once(
            tmp_path / "b",
            f"https://127.0.0.1:{port}/hook",
            LOOPBACK_OK,
            httpx.AsyncHTTPTransport(verify=trust),
        )
        assert outcome == AttemptOutcome.RETRY
        assert "certificate" in attempts[0].error.lower() or "ssl" in attempts[0].error.lower()
    finally:
        server.shutdown()
        server.server_close()
