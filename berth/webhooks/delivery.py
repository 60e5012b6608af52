"""Deliverer: send due outbox rows, retry with back-off, record every attempt.

Connect-time check (DNS rebinding): for every request, including each redirect hop, the
deliverer resolves the host itself, checks *every* address against the policy, and then
connects to one of those very addresses: the URL's host is replaced by the checked IP,
the `Host` header keeps the original name, and for https the TLS SNI and certificate
check use the original name too (httpcore's `sni_hostname` extension). So there is no
second lookup an attacker's DNS could answer differently. We chose this over hooking a
transport's socket creation because it needs no private httpx/httpcore API and works
with any transport; proxies are off (`trust_env=False`) since a proxy would connect on
our behalf to an address we never checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import httpx

import berth
from berth import serde
from berth.core.ids import new_id
from berth.storage.webhooks import Attempt, AttemptOutcome, Delivery, WebhookStore
from berth.webhooks import WebhookSettings, policy, signing

log = logging.getLogger("berth.webhooks")

#: contract §7: 5 s to connect, 30 s to read
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
MAX_REDIRECTS = 5
#: one attempt, all redirects and addresses included, ends by then (seconds)
ATTEMPT_DEADLINE = 120.0
#: a claim outlives any attempt, so a live deliverer never loses one mid-send
LEASE_SECONDS = ATTEMPT_DEADLINE * 2.5
_REDIRECTS = (301, 302, 303, 307, 308)


class _GiveUp(Exception):
    """The delivery cannot succeed by trying again (too many redirects)."""


def backoff(attempt: int, base: float, cap: float) -> float:
    """Full jitter: a uniform wait up to `base * 2**(attempt-1)`, at most `cap`.

    Random over the whole range so receivers that came back up are not hit by every
    sender at the same instant.
    """
    return random.uniform(0.0, min(cap, base * 2 ** (attempt - 1)))


class Deliverer:
    """Sends webhooks from the outbox, a few at a time, in this process.

    Args:
        self_url: this server's own base URL, for relative webhook URLs.
        recover_all: drop every claim at start (the embedded database has a single
            server process, so any claim belonged to a process that is gone).
        transport: an httpx transport to use instead of the network (tests).
    """

    def __init__(
        self,
        *,
        store: WebhookStore,
        settings: WebhookSettings,
        self_url: str,
        recover_all: bool,
        concurrency: int = 10,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.policy = settings.policy
        self.self_url = self_url.rstrip("/")
        self.recover_all = recover_all
        self.concurrency = concurrency
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{new_id()[-8:]}"
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._active: set[asyncio.Task[AttemptOutcome]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False

    async def start(self) -> None:
        if self.recover_all:
            await self.store.release()
        self._client = httpx.AsyncClient(
            timeout=TIMEOUT,
            follow_redirects=False,  # followed by hand: each hop is checked
            trust_env=False,
            transport=self._transport,
            headers={"User-Agent": f"berth/{berth.__version__} webhooks"},
        )
        self._loop_task = asyncio.create_task(self._loop(), name="berth-webhooks")

    async def stop(self, grace: float = 5.0) -> None:
        """Stop claiming, let sends in flight finish for `grace` seconds, free the rest."""
        self._stopping = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self._active:
            _, still = await asyncio.wait(self._active, timeout=grace)
            for task in still:
                task.cancel()
            for task in still:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        with contextlib.suppress(Exception):
            # Another process may take them at once instead of after the lease.
            await self.store.release(self.worker_id)
        if self._client is not None:
            await self._client.aclose()

    def wake(self) -> None:
        """Look for due deliveries now rather than at the next poll."""
        self._wake.set()

    async def _loop(self) -> None:
        while not self._stopping:
            timeout = self.settings.poll_interval
            try:
                due = await self.store.next_due_at()
                now = datetime.now(UTC)
                free = self.concurrency - len(self._active)
                if due is not None and due <= now and free > 0:
                    claimed = await self.store.claim_due(
                        worker_id=self.worker_id, limit=free, lease_seconds=LEASE_SECONDS
                    )
                    for delivery in claimed:
                        self._spawn(delivery)
                    if len(claimed) == free:
                        continue
                elif due is not None and due > now:
                    timeout = min(timeout, (due - now).total_seconds())
            except Exception:
                log.exception("webhook outbox poll failed; retrying")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(timeout, 0.01))

    def _spawn(self, delivery: Delivery) -> None:
        task = asyncio.create_task(self.deliver(delivery), name=f"berth-webhook-{delivery.run_id}")
        self._active.add(task)

        def done(finished: asyncio.Task[AttemptOutcome]) -> None:
            self._active.discard(finished)
            self._wake.set()

        task.add_done_callback(done)

    async def deliver(self, delivery: Delivery) -> AttemptOutcome:
        """Make the next attempt at `delivery` (claimed by us), record it and log it."""
        number = delivery.attempts + 1
        started = datetime.now(UTC)
        clock = time.monotonic()
        status_code: int | None = None
        error: str | None = None
        retry_after: float | None = None
        try:
            async with asyncio.timeout(ATTEMPT_DEADLINE):
                response = await self._post(delivery)
            status_code = response.status_code
            if 200 <= status_code < 300:
                outcome = AttemptOutcome.DELIVERED
            elif status_code == 429 or status_code >= 500:
                outcome, error = AttemptOutcome.RETRY, f"HTTP {status_code}"
                retry_after = _retry_after(response)
            else:
                # The receiver understood and said no (or redirected nowhere): final.
                outcome, error = AttemptOutcome.FAILED, f"HTTP {status_code}"
        except _GiveUp as exc:
            outcome, error = AttemptOutcome.FAILED, str(exc)
        except policy.Refused as exc:
            outcome, error = AttemptOutcome.FAILED, f"refused: {exc.message}"
        except TimeoutError:
            outcome, error = AttemptOutcome.RETRY, f"no answer within {ATTEMPT_DEADLINE:.0f}s"
        except httpx.TimeoutException as exc:
            outcome, error = AttemptOutcome.RETRY, f"timeout: {type(exc).__name__}"
        except (httpx.TransportError, OSError) as exc:
            outcome, error = AttemptOutcome.RETRY, f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a bug of ours must not wedge the delivery as claimed
            log.exception("webhook delivery %s crashed", delivery.delivery_id)
            outcome, error = AttemptOutcome.RETRY, f"{type(exc).__name__}: {exc}"
        if outcome == AttemptOutcome.DELIVERED:
            error = None
        elif outcome == AttemptOutcome.RETRY and number >= self.settings.max_attempts:
            outcome = AttemptOutcome.FAILED
        next_at = None
        if outcome == AttemptOutcome.RETRY:
            delay = backoff(number, self.settings.backoff_base, self.settings.backoff_max)
            if retry_after is not None:
                delay = max(delay, min(retry_after, self.settings.backoff_max))
            next_at = datetime.now(UTC) + timedelta(seconds=delay)
        attempt = Attempt(
            delivery_id=delivery.delivery_id,
            attempt=number,
            started_at=started,
            duration_ms=(time.monotonic() - clock) * 1000,
            status_code=status_code,
            error=error,
            outcome=outcome,
        )
        try:
            kept = await self.store.record_attempt(
                attempt, worker_id=self.worker_id, next_attempt_at=next_at
            )
        except Exception:
            # The claim stays until its lease ends; then this attempt is made again.
            log.exception("recording webhook attempt %s/%d failed", delivery.delivery_id, number)
            kept = False
        log.log(
            logging.INFO if outcome != AttemptOutcome.FAILED else logging.WARNING,
            "webhook %s for run %s: attempt %d/%d to %s → %s (status %s%s)%s",
            delivery.delivery_id,
            delivery.run_id,
            number,
            self.settings.max_attempts,
            _redact(delivery.url),
            outcome.value,
            status_code if status_code is not None else "-",
            f", {error}" if error else "",
            "" if kept else " [lease lost; not recorded]",
        )
        return outcome

    async def _post(self, delivery: Delivery) -> httpx.Response:
        payload = {**delivery.payload, "webhook_sent_at": datetime.now(UTC)}
        body = serde.dumps(payload)
        headers = {
            **self.settings.headers,
            "Content-Type": "application/json",
            signing.DELIVERY_HEADER: delivery.delivery_id,
        }
        if self.settings.secret:
            headers[signing.SIGNATURE_HEADER] = signing.sign(self.settings.secret, body)
        url = delivery.url
        if self.policy.is_relative(url):
            url = self.self_url + url
        method = "POST"
        content: bytes | None = body
        for _ in range(MAX_REDIRECTS + 1):
            target = self.policy.check_static(url)
            if target is None:  # relative: only the first hop, made absolute above
                raise _GiveUp("a redirect to a relative URL without a base")
            response = await self._send(target, method, content, headers)
            location = response.headers.get("location")
            if response.status_code not in _REDIRECTS or not location:
                return response
            next_url = str(httpx.URL(url).join(location))
            if _origin(next_url) != _origin(url):
                # Credentials meant for one host go no further, as httpx does.
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            if response.status_code in (301, 302, 303):
                method, content = "GET", None
                headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
            url = next_url
        raise _GiveUp(f"more than {MAX_REDIRECTS} redirects")

    async def _send(
        self, target: policy.Target, method: str, content: bytes | None, headers: Mapping[str, str]
    ) -> httpx.Response:
        """Send to an address of `target` that the policy allowed just now."""
        assert self._client is not None
        addresses = await self.policy.resolve(target)
        original = httpx.URL(target.url)
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        failure: httpx.ConnectError | None = None
        for address in addresses:
            request = self._client.build_request(
                method,
                original.copy_with(host=str(address)),
                content=content,
                headers={**headers, "Host": original.netloc.decode("ascii")},
                extensions=extensions,
            )
            try:
                # Streamed and closed unread: only the status and headers matter, and
                # a receiver must not make us buffer an endless body.
                response = await self._client.send(request, stream=True)
            except httpx.ConnectError as exc:
                failure = exc  # the next address may answer
                continue
            await response.aclose()
            return response
        assert failure is not None
        raise failure


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare from webhook receivers; our back-off applies


def _origin(url: str) -> tuple[str, str, int | None]:
    parsed = httpx.URL(url)
    return parsed.scheme, parsed.host, parsed.port


def _redact(url: str) -> str:
    """The URL without its query (webhook URLs often carry tokens there)."""
    return url.split("?", 1)[0]
