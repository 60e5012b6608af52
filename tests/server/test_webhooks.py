"""Run-end webhooks (contract §7): payload, signature, retries, durability, SSRF policy."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import langgraph_sdk
import pytest

from berth.webhooks import signing
from tests.berth_server import BerthServer, free_port
from tests.conftest import StartServer

WEBHOOKS_CONFIG = Path(__file__).parent.parent / "graphs" / "webhooks" / "langgraph.json"
GRAPHS = Path(__file__).parent.parent / "graphs"
SECRET = "test-webhook-secret"
FAST_RETRIES = {
    "BERTH_WEBHOOK_BACKOFF_BASE": "0.05",
    "BERTH_WEBHOOK_BACKOFF_MAX": "0.2",
    "BERTH_WEBHOOK_MAX_ATTEMPTS": "3",
    "BERTH_WEBHOOK_POLL_INTERVAL": "0.05",
}


class Receiver:
    """A webhook receiver on 127.0.0.1 that answers each path from a script of statuses
    (then 200) and records every request."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.scripts: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?", 1)[0]
                with receiver._lock:
                    receiver.requests.append(
                        {"path": self.path, "headers": dict(self.headers.items()), "body": body}
                    )
                    script = receiver.scripts.get(path, [])
                    status = script.pop(0) if script else 200
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def new_path(self, *script: int) -> str:
        path = f"/hook/{uuid.uuid4().hex}"
        self.scripts[path] = list(script)
        return path

    def received(self, path: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if r["path"].split("?", 1)[0] == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def hook_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BerthServer]:
    """A server whose langgraph.json allows loopback, signs, and adds static headers."""
    berth = BerthServer(
        tmp_path_factory.mktemp("webhooks") / "data", config=WEBHOOKS_CONFIG, env=FAST_RETRIES
    )
    berth.start()
    yield berth
    berth.stop()


def deliveries(server: BerthServer, run_id: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{server.url}/berth/webhooks", params={"run_id": run_id})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def wait_settled(server: BerthServer, run_id: str, timeout: float = 20.0) -> dict[str, Any]:
    """The run's one delivery once it is delivered or failed."""
    deadline = time.monotonic() + timeout
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        found = deliveries(server, run_id)
        if found and found[0]["status"] != "pending":
            assert len(found) == 1
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"delivery for run {run_id} not settled: {found}")


def iso(value: str) -> datetime:
    return datetime.fromisoformat(value)


@pytest.mark.anyio
async def test_success_payload_is_signed_with_headers(
    hook_server: BerthServer, receiver: Receiver
) -> None:
    sdk = langgraph_sdk.get_client(url=hook_server.url)
    thread = await sdk.threads.create()
    path = receiver.new_path()
    run = await sdk.runs.create(
        thread["thread_id"],
        "echo",
        input={"messages": [{"role": "user", "content": "hi"}]},
        metadata={"tag": "a"},
        webhook=receiver.url(path) + "?token=abc",
    )
    await sdk.runs.join(thread["thread_id"], run["run_id"])
    delivery = wait_settled(hook_server, run["run_id"])
    await sdk.aclose()

    assert delivery["status"] == "delivered"
    assert delivery["run_status"] == "success"
    assert delivery["thread_id"] == thread["thread_id"]
    assert [(a["attempt"], a["outcome"], a["status_code"]) for a in delivery["attempt_log"]] == [
        (1, "delivered", 200)
    ]
    (request,) = receiver.received(path)
    assert request["path"] == path + "?token=abc"
    headers, body = request["headers"], request["body"]
    assert headers["Content-Type"] == "application/json"
    assert headers["Authorization"] == "Bearer test-token"
    assert headers["X-Static"] == "static-value"
    assert headers[signing.DELIVERY_HEADER] == delivery["delivery_id"]
    assert signing.verify(SECRET, headers, body)
    assert not signing.verify("another secret", headers, body)
    assert not signing.verify(SECRET, headers, body + b" ")

    payload = json.loads(body)
    assert payload["run_id"] == run["run_id"]
    assert payload["thread_id"] == thread["thread_id"]
    assert payload["assistant_id"] == run["assistant_id"]
    assert payload["status"] == "success"
    assert payload["metadata"] == {"tag": "a"}
    assert payload["multitask_strategy"] == "enqueue"
    assert payload["kwargs"]["webhook"] == receiver.url(path) + "?token=abc"
    assert payload["error"] is None
    assert [m["content"] for m in payload["values"]["messages"]] == ["hi", "echo: hi"]
    started, ended = iso(payload["run_started_at"]), iso(payload["run_ended_at"])
    sent = iso(payload["webhook_sent_at"])
    assert iso(payload["created_at"]) <= started <= ended <= sent
    assert payload["created_at"] == run["created_at"]


@pytest.mark.anyio
async def test_error_run_sends_error(hook_server: BerthServer, receiver: Receiver) -> None:
    sdk = langgraph_sdk.get_client(url=hook_server.url)
    thread = await sdk.threads.create()
    path = receiver.new_path()
    run = await sdk.runs.create(
        thread["thread_id"], "failing", input={}, webhook=receiver.url(path)
    )
    await sdk.runs.join(thread["thread_id"], run["run_id"])
    await sdk.aclose()
    assert wait_settled(hook_server, run["run_id"])["status"] == "delivered"
    payload = json.loads(receiver.received(path)[0]["body"])
    assert payload["status"] == "error"
    assert payload["error"] == {"error": "ValueError", "message": "boom"}
    assert payload["run_id"] == run["run_id"]


@pytest.mark.anyio
async def test_stateless_run_sends_null_values(
    hook_server: BerthServer, receiver: Receiver
) -> None:
    sdk = langgraph_sdk.get_client(url=hook_server.url)
    path = receiver.new_path()
    result = await sdk.runs.wait(
        None,
        "echo",
        input={"messages": [{"role": "user", "content": "x"}]},
        webhook=receiver.url(path),
    )
    await sdk.aclose()
    assert result["messages"][-1]["content"] == "echo: x"
    deadline = time.monotonic() + 20
    while not receiver.received(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    payload = json.loads(receiver.received(path)[0]["body"])
    assert payload["status"] == "success"
    assert payload["values"] is None  # the thread was temporary


@pytest.mark.anyio
@pytest.mark.parametrize("action", ["interrupt", "rollback"])
async def test_cancelled_run_sends_final_status(
    hook_server: BerthServer, receiver: Receiver, action: str
) -> None:
    sdk = langgraph_sdk.get_client(url=hook_server.url)
    thread = await sdk.threads.create()
    path = receiver.new_path()
    run = await sdk.runs.create(
        thread["thread_id"],
        "slow",
        input={"steps": []},
        config={"configurable": {"sleep": 5}},
        webhook=receiver.url(path),
    )
    for _ in range(100):
        if (await sdk.runs.get(thread["thread_id"], run["run_id"]))["status"] == "running":
            break
        time.sleep(0.05)
    await sdk.runs.cancel(thread["thread_id"], run["run_id"], action=action)  # type: ignore[arg-type]
    await sdk.aclose()
    delivery = wait_settled(hook_server, run["run_id"])
    assert delivery["status"] == "delivered"
    payload = json.loads(receiver.received(path)[0]["body"])
    assert payload["status"] == ("interrupted" if action == "interrupt" else "rollback")
    assert payload["run_id"] == run["run_id"]


@pytest.mark.anyio
async def test_5xx_retried_until_delivered(hook_server: BerthServer, receiver: Receiver) -> None:
    sdk = langgraph_sdk.get_client(url=hook_server.url)
    path = receiver.new_path(500, 503)
    run = await sdk.runs.create(
        None,
        "echo",
        input={"messages": [{"role": "user", "content": "r"}]},
        webhook=receiver.url(path),
    )
    await sdk.aclose()
    delivery = wait_settled(hook_server, run["run_id"])
    assert delivery["status"] == "delivered"
    assert delivery["attempts"] == 3
    assert delivery["last_error"] is None
    log = [
        (a["attempt"], a["outcome"], a["status_code"], a["error"]) for a in delivery["attempt_log"]
    ]
    assert log == [
        (1, "retry", 500, "HTTP 500"),
        (2, "retry", 503, "HTTP 503"),
        (3, "delivered", 200, None),
    ]
    bodies = [r["body"] for r in receiver.received(path)]
    assert len(bodies) == 3
    # Every attempt is signed afresh, and the delivery id is stable for deduplication.
    assert len({r["headers"][signing.DELIVERY_HEADER] for r in receiver.received(path)}) == 1
    assert all(signing.verify(SECRET, r["headers"], r["body"]) for r in receiver.received(path))
    by_id = httpx.get(f"{hook_server.url}/berth/webhooks/{delivery['delivery_id']}").json()
    assert by_id == delivery


@pytest.mark.anyio
async def test_429_retried(hook_server: BerthServer, receiver: Receiver) -> None:
    sdk = langgraph_sdk.get_client(url=hook_server.url)
    path = receiver.new_path(429)
    run = await sdk.runs.create(None, "echo", input={"messages": []}, webhook=receiver.url(path))
    await sdk.aclose()
    delivery = wait_settled(hook_server, run["run_id"])
    assert delivery["status"] == "delivered"
    assert [(a["outcome"], a["status_code"]) for a in delivery["attempt_log"]] == [
        ("retry", 429),
        ("delivered", 200),
    ]


@pytest.mark.anyio
async def test_4xx_fails_without_retry(hook_server: BerthServer, receiver: Receiver) -> None:
    sdk = langgraph_sdk.get_client(url=hook_server.url)
    path = receiver.new_path(404, 404)
    run = await sdk.runs.create(None, "echo", input={"messages": []}, webhook=receiver.url(path))
    await sdk.aclose()
    delivery = wait_settled(hook_server, run["run_id"])
    assert delivery["status"] == "failed"
    assert delivery["last_status_code"] == 404
    assert [(a["outcome"], a["status_code"]) for a in delivery["attempt_log"]] == [("failed", 404)]
    assert len(receiver.received(path)) == 1


@pytest.mark.anyio
async def test_receiver_down_fails_after_max_attempts(hook_server: BerthServer) -> None:
    sdk = langgraph_sdk.get_client(url=hook_server.url)
    dead = f"http://127.0.0.1:{free_port()}/hook"
    run = await sdk.runs.create(None, "echo", input={"messages": []}, webhook=dead)
    await sdk.aclose()
    delivery = wait_settled(hook_server, run["run_id"])
    assert delivery["status"] == "failed"
    assert delivery["attempts"] == 3
    log = delivery["attempt_log"]
    assert [a["outcome"] for a in log] == ["retry", "retry", "failed"]
    assert all(a["status_code"] is None and "ConnectError" in a["error"] for a in log)
    assert delivery["last_error"] == log[-1]["error"]
    # Each attempt also has its log line.
    output = hook_server.output()
    assert f"webhook {delivery['delivery_id']} for run {run['run_id']}: attempt 3/3" in output


@pytest.mark.anyio
async def test_relative_url_calls_this_server(hook_server: BerthServer) -> None:
    sdk = langgraph_sdk.get_client(url=hook_server.url)
    run = await sdk.runs.create(None, "echo", input={"messages": []}, webhook="/ok")
    await sdk.aclose()
    delivery = wait_settled(hook_server, run["run_id"])
    # `/ok` answers GET only: a 405 proves the POST reached this very server.
    assert delivery["status"] == "failed"
    assert delivery["last_status_code"] == 405


def test_route_validates_its_filters(hook_server: BerthServer) -> None:
    response = httpx.get(f"{hook_server.url}/berth/webhooks", params={"run_id": "nope"})
    assert response.status_code == 422
    assert "run_id" in response.json()["detail"]
    missing = httpx.get(f"{hook_server.url}/berth/webhooks/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert (
        httpx.get(f"{hook_server.url}/berth/webhooks", params={"status": "odd"}).status_code == 422
    )


@pytest.mark.anyio
async def test_delivery_survives_a_restart(start_server: StartServer) -> None:
    port = free_port()
    server = start_server(
        config=WEBHOOKS_CONFIG,
        env={
            "BERTH_WEBHOOK_BACKOFF_BASE": "0.2",
            "BERTH_WEBHOOK_BACKOFF_MAX": "0.5",
            "BERTH_WEBHOOK_MAX_ATTEMPTS": "100",
            "BERTH_WEBHOOK_POLL_INTERVAL": "0.05",
        },
    )
    sdk = langgraph_sdk.get_client(url=server.url)
    run = await sdk.runs.create(
        None, "echo", input={"messages": []}, webhook=f"http://127.0.0.1:{port}/hook"
    )
    await sdk.aclose()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = deliveries(server, run["run_id"])
        if found and found[0]["attempts"] >= 1:
            break
        time.sleep(0.05)
    assert found[0]["status"] == "pending"
    server.stop()
    receiver = Receiver(port)  # the receiver comes up while the server is down
    try:
        server.start()
        delivery = wait_settled(server, run["run_id"])
        assert delivery["status"] == "delivered"
        log = delivery["attempt_log"]
        assert len(log) >= 2
        assert log[-1]["outcome"] == "delivered"
        assert all(a["outcome"] == "retry" for a in log[:-1])
        (request,) = receiver.received("/hook")
        assert json.loads(request["body"])["run_id"] == run["run_id"]
    finally:
        receiver.close()


# -- creation-time policy ------------------------------------------------------


def create_status(server: BerthServer, webhook: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/runs",
        json={"assistant_id": "echo", "input": {"messages": []}, "webhook": webhook},
    )


@pytest.mark.parametrize(
    "webhook",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://[::ffff:127.0.0.1]/hook",
        "http://2130706433/hook",
        "http://0.0.0.0/hook",
        "/relative/hook",
        "ftp://example.com/hook",
        "not a url",
    ],
)
def test_default_policy_refuses_at_creation(server: BerthServer, webhook: str) -> None:
    response = create_status(server, webhook)
    assert response.status_code == 422, response.text
    assert "webhook" in response.json()["detail"]


def _config(tmp_path: Path, webhooks: dict[str, Any], http: dict[str, Any] | None = None) -> Path:
    config = tmp_path / "langgraph.json"
    config.write_text(
        json.dumps(
            {
                "graphs": {"echo": str(GRAPHS / "echo.py") + ":graph"},
                "webhooks": webhooks,
                "http": http or {},
            }
        )
    )
    return config


def test_configured_policy(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server(
        config=_config(
            tmp_path,
            {
                "url": {
                    "require_https": True,
                    "allowed_domains": ["hooks.example.com", "*.example.org"],
                    "allowed_ports": [443, 8443],
                    "max_url_length": 60,
                }
            },
        )
    )
    refused = {
        "http://hooks.example.com/x": "https",
        "https://evil.example.net/x": "allowed_domains",
        "https://example.org/x": "allowed_domains",
        "https://hooks.example.com:8080/x": "allowed_ports",
        "https://hooks.example.com/" + "a" * 60: "longer than 60",
    }
    for webhook, reason in refused.items():
        response = create_status(server, webhook)
        assert response.status_code == 422, webhook
        assert reason in response.json()["detail"], (webhook, response.json())
    for webhook in ("https://hooks.example.com/x", "https://a.b.example.org:8443/x"):
        response = create_status(server, webhook)
        assert response.status_code == 200, (webhook, response.text)
        assert response.json()["kwargs"]["webhook"] == webhook


def test_disable_webhooks_mutes(start_server: StartServer, tmp_path: Path) -> None:
    receiver = Receiver()
    try:
        server = start_server(
            config=_config(
                tmp_path, {"url": {"disable_loopback": False}}, {"disable_webhooks": True}
            ),
            env=FAST_RETRIES,
        )
        path = receiver.new_path()
        response = httpx.post(
            f"{server.url}/runs/wait",
            json={"assistant_id": "echo", "input": {"messages": []}, "webhook": receiver.url(path)},
        )
        assert response.status_code == 200
        time.sleep(0.5)
        assert receiver.received(path) == []
        assert httpx.get(f"{server.url}/berth/webhooks").json() == []
    finally:
        receiver.close()


@pytest.mark.anyio
async def test_postgres_two_servers_deliver_each_webhook_once(
    start_server: StartServer, pg_database: str, receiver: Receiver
) -> None:
    env = {**FAST_RETRIES, "DATABASE_URI": pg_database}
    first = start_server(config=WEBHOOKS_CONFIG, env=env, name="a")
    second = start_server(config=WEBHOOKS_CONFIG, env=env, name="b")
    sdk = langgraph_sdk.get_client(url=first.url)
    paths = [receiver.new_path(500) for _ in range(6)]
    runs = [
        await sdk.runs.create(None, "echo", input={"messages": []}, webhook=receiver.url(p))
        for p in paths
    ]
    await sdk.aclose()
    for run in runs:
        delivery = wait_settled(second, run["run_id"])
        assert delivery["status"] == "delivered"
        assert [a["outcome"] for a in delivery["attempt_log"]] == ["retry", "delivered"]
    # Each attempt went out exactly once, whichever server made it.
    assert [len(receiver.received(p)) for p in paths] == [2] * len(paths)
