"""Run-end webhooks (contract §7): URL policy, signing, and durable delivery.

`policy` checks URLs when a run is created and again on every connection; the run's
end writes an outbox row (`berth.storage.webhooks.enqueue`) in the same transaction;
`delivery.Deliverer` sends it, retrying, and records every attempt.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from berth.core import errors
from berth.webhooks import policy, signing


@dataclasses.dataclass(frozen=True, kw_only=True)
class WebhookSettings:
    """Everything the deliverer and run admission need, read once at start-up."""

    policy: policy.UrlPolicy = dataclasses.field(default_factory=policy.UrlPolicy)
    #: sent with every webhook (`webhooks.headers`, templates resolved)
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    #: signs every request when set
    secret: str | None = None
    #: attempts per delivery, the first included
    max_attempts: int = 3
    #: the first retry waits up to this long; each further one up to twice as long
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    #: how often an idle deliverer looks for due deliveries
    poll_interval: float = 0.5

    @property
    def muted(self) -> bool:
        return self.policy.muted

    @classmethod
    def load(
        cls,
        webhooks: Mapping[str, Any],
        http: Mapping[str, Any],
        env: Mapping[str, str] | None = None,
    ) -> WebhookSettings:
        """From `langgraph.json` `webhooks` and `http` sections; `BERTH_WEBHOOK_*` win.

        Raises `ConfigError` on a malformed section, an unset or disallowed template
        variable, or a bad number.
        """
        env = os.environ if env is None else env
        url = webhooks.get("url") or {}
        if not isinstance(url, dict):
            raise errors.ConfigError("webhooks.url must be an object")
        muted = bool(http.get("disable_webhooks", False))
        return cls(
            policy=policy.UrlPolicy.from_config(url, muted=muted),
            headers=signing.static_headers(webhooks, env),
            secret=signing.secret(webhooks, env),
            max_attempts=int(
                _number(env, "BERTH_WEBHOOK_MAX_ATTEMPTS", webhooks.get("max_attempts", 3), 1)
            ),
            backoff_base=_number(env, "BERTH_WEBHOOK_BACKOFF_BASE", 1.0, 0),
            backoff_max=_number(env, "BERTH_WEBHOOK_BACKOFF_MAX", 60.0, 0),
            poll_interval=_number(env, "BERTH_WEBHOOK_POLL_INTERVAL", 0.5, 0.01),
        )


def _number(env: Mapping[str, str], name: str, default: Any, minimum: float) -> float:
    raw = env.get(name)
    value: Any = default if raw in (None, "") else raw
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise errors.ConfigError(f"{name} must be a number, not {value!r}") from None
    if number < minimum:
        raise errors.ConfigError(f"{name} must be at least {minimum}, not {value!r}")
    return number
