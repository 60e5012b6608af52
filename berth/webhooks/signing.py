"""Webhook signatures and the static headers sent with every webhook.

Signature: with a secret configured (env `BERTH_WEBHOOK_SECRET`, else `langgraph.json`
`webhooks.secret`), each request carries

    X-Berth-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>

The timestamp is signed with the body, so a receiver that checks both the MAC and that
`t` is recent (`verify(..., tolerance=300)`) rejects forged and replayed requests alike.
Every attempt is signed afresh. `X-Berth-Delivery` names the delivery (the same on every
retry) so a receiver can drop duplicates.

Receiver side, e.g. in a Starlette route:

    from berth.webhooks import signing
    body = await request.body()
    if not signing.verify(SECRET, request.headers, body):
        return Response(status_code=401)

Static headers: `webhooks.headers` values may hold `${{ env.NAME }}` templates; NAME must
start with `webhooks.env_prefix` (default `LG_WEBHOOK_`) so a config file cannot leak any
other variable of the server's environment.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from berth.core import errors

SIGNATURE_HEADER = "X-Berth-Signature"
DELIVERY_HEADER = "X-Berth-Delivery"
DEFAULT_ENV_PREFIX = "LG_WEBHOOK_"
#: how old a signed timestamp a receiver accepts by default (seconds)
DEFAULT_TOLERANCE = 300
_TEMPLATE = re.compile(r"\$\{\{\s*env\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
#: headers the deliverer sets itself; configuration may not replace them
_RESERVED = {"content-type", "content-length", "host", SIGNATURE_HEADER.lower()}


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `f"{timestamp}.{body}"` under `secret`."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The `X-Berth-Signature` header value for `body`, signed now (or at `timestamp`)."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={signature(secret, t, body)}"


def verify(
    secret: str | Iterable[str],
    headers: Mapping[str, str],
    body: bytes,
    tolerance: float = DEFAULT_TOLERANCE,
    *,
    now: float | None = None,
) -> bool:
    """Whether `body` was signed by a holder of `secret` within `tolerance` seconds.

    Args:
        secret: the shared secret, or several (any matches: for rotating secrets).
        headers: the request's headers (any mapping; the name is matched case-blind).
        body: the raw request body, byte for byte as received.
        tolerance: the oldest (or most future) timestamp accepted, in seconds.
    """
    value = _header(headers, SIGNATURE_HEADER)
    if not value:
        return False
    timestamp: int | None = None
    macs: list[str] = []
    for part in value.split(","):
        key, _, item = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(item)
            except ValueError:
                return False
        elif key == "v1":
            macs.append(item)
    if timestamp is None or not macs:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    secrets = [secret] if isinstance(secret, str) else list(secret)
    return any(
        hmac.compare_digest(signature(s, timestamp, body), mac) for s in secrets for mac in macs
    )


def _header(headers: Mapping[str, str], name: str) -> str | None:
    found = headers.get(name)
    if found is not None:
        return found
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def render(template: str, env: Mapping[str, str], prefix: str, *, where: str) -> str:
    """Replace each `${{ env.NAME }}` in `template`; raise `ConfigError` if not allowed.

    NAME must start with `prefix` and be set: a header silently sent empty is worse
    than a server that refuses to start.
    """

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if not name.startswith(prefix):
            raise errors.ConfigError(
                f"{where}: environment variable {name!r} does not start with the "
                f"webhooks.env_prefix {prefix!r}"
            )
        if name not in env:
            raise errors.ConfigError(f"{where}: environment variable {name!r} is not set")
        return env[name]

    if "${{" in template and not _TEMPLATE.search(template):
        raise errors.ConfigError(f"{where}: malformed template; use ${{{{ env.NAME }}}}")
    return _TEMPLATE.sub(substitute, template)


def env_prefix(config: Mapping[str, Any]) -> str:
    prefix = config.get("env_prefix", DEFAULT_ENV_PREFIX)
    if not isinstance(prefix, str):
        raise errors.ConfigError("webhooks.env_prefix must be a string")
    return prefix


def static_headers(config: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """`webhooks.headers` with their templates resolved, checked for header safety."""
    raw = config.get("headers") or {}
    if not isinstance(raw, dict):
        raise errors.ConfigError("webhooks.headers must be an object of name → value")
    prefix = env_prefix(config)
    headers: dict[str, str] = {}
    for name, value in raw.items():
        where = f"webhooks.headers.{name}"
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise errors.ConfigError(f"{where}: not a valid header name")
        if name.lower() in _RESERVED or name.lower().startswith("x-berth-"):
            raise errors.ConfigError(f"{where}: this header is set by Berth itself")
        if not isinstance(value, str):
            raise errors.ConfigError(f"{where}: the value must be a string")
        rendered = render(value, env, prefix, where=where)
        if any(c in rendered for c in "\r\n\x00"):
            raise errors.ConfigError(f"{where}: the value must not contain line breaks")
        headers[name] = rendered
    return headers


def secret(config: Mapping[str, Any], env: Mapping[str, str]) -> str | None:
    """The signing secret: `BERTH_WEBHOOK_SECRET`, else `webhooks.secret` (templated)."""
    from_env = env.get("BERTH_WEBHOOK_SECRET")
    if from_env:
        return from_env
    value = config.get("secret")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise errors.ConfigError("webhooks.secret must be a string")
    return render(value, env, env_prefix(config), where="webhooks.secret") or None
