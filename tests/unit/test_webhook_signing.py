"""Webhook signatures, header templates and the webhook settings loader."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from berth.core import errors
from berth.webhooks import WebhookSettings, signing

BODY = b'{"run_id": "r1", "status": "success"}'


def test_sign_matches_the_documented_scheme() -> None:
    header = signing.sign("s3cret", BODY, timestamp=1_700_000_000)
    expected = hmac.new(b"s3cret", b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"


def test_verify_round_trip_and_tampering() -> None:
    headers = {signing.SIGNATURE_HEADER: signing.sign("s3cret", BODY)}
    assert signing.verify("s3cret", headers, BODY)
    assert signing.verify(["old", "s3cret"], headers, BODY)  # rotation
    assert not signing.verify("wrong", headers, BODY)
    assert not signing.verify("s3cret", headers, BODY + b"x")
    # Header names are matched case-blind, as HTTP says.
    assert signing.verify("s3cret", {"x-berth-signature": headers[signing.SIGNATURE_HEADER]}, BODY)


def test_verify_rejects_replays_and_garbage() -> None:
    old = {signing.SIGNATURE_HEADER: signing.sign("k", BODY, timestamp=1_000)}
    assert not signing.verify("k", old, BODY)
    assert signing.verify("k", old, BODY, now=1_100)
    assert not signing.verify("k", old, BODY, now=1_000 + 301)
    assert not signing.verify("k", old, BODY, now=1_000 - 301)  # from the future
    assert signing.verify("k", old, BODY, tolerance=400, now=1_000 + 301)
    # The timestamp is signed: moving it breaks the MAC.
    mac = old[signing.SIGNATURE_HEADER].split("v1=")[1]
    assert not signing.verify("k", {signing.SIGNATURE_HEADER: f"t=1001,v1={mac}"}, BODY, now=1_001)
    for value in ("", "t=abc,v1=00", "v1=00", "t=1000", "garbage"):
        assert not signing.verify("k", {signing.SIGNATURE_HEADER: value}, BODY, now=1_000)
    assert not signing.verify("k", {}, BODY)


def test_render_templates() -> None:
    env = {"LG_WEBHOOK_A": "one", "LG_WEBHOOK_B": "two", "OTHER": "secret"}
    rendered = signing.render(
        "x ${{ env.LG_WEBHOOK_A }}-${{env.LG_WEBHOOK_B}} y", env, "LG_WEBHOOK_", where="h"
    )
    assert rendered == "x one-two y"
    assert signing.render("plain", env, "LG_WEBHOOK_", where="h") == "plain"
    with pytest.raises(errors.ConfigError, match="does not start with"):
        signing.render("${{ env.OTHER }}", env, "LG_WEBHOOK_", where="h")
    with pytest.raises(errors.ConfigError, match="not set"):
        signing.render("${{ env.LG_WEBHOOK_MISSING }}", env, "LG_WEBHOOK_", where="h")
    with pytest.raises(errors.ConfigError, match="malformed"):
        signing.render("${{ OTHER }}", env, "LG_WEBHOOK_", where="h")


def test_static_headers() -> None:
    env = {"MY_TOKEN": "t0k", "LG_WEBHOOK_TOKEN": "nope"}
    config = {
        "env_prefix": "MY_",
        "headers": {"Authorization": "Bearer ${{ env.MY_TOKEN }}", "X-Team": "core"},
    }
    assert signing.static_headers(config, env) == {
        "Authorization": "Bearer t0k",
        "X-Team": "core",
    }
    for headers in (
        {"Content-Type": "text/plain"},
        {"X-Berth-Signature": "forged"},
        {"Bad Header": "x"},
        {"X-Ok": 3},
        {"X-Ok": "${{ env.LG_WEBHOOK_TOKEN }}"},  # outside the configured prefix
    ):
        with pytest.raises(errors.ConfigError):
            signing.static_headers({"env_prefix": "MY_", "headers": headers}, env)
    with pytest.raises(errors.ConfigError, match="line breaks"):
        signing.static_headers(
            {"headers": {"X-A": "${{ env.LG_WEBHOOK_X }}"}}, {"LG_WEBHOOK_X": "a\r\nB: c"}
        )


def test_secret_sources() -> None:
    config = {"secret": "${{ env.LG_WEBHOOK_SECRET }}"}
    assert signing.secret(config, {"LG_WEBHOOK_SECRET": "from-file"}) == "from-file"
    both = {"LG_WEBHOOK_SECRET": "from-file", "BERTH_WEBHOOK_SECRET": "from-env"}
    assert signing.secret(config, both) == "from-env"
    assert signing.secret({}, {}) is None
    with pytest.raises(errors.ConfigError):
        signing.secret({"secret": "${{ env.HOME }}"}, {"HOME": "/root"})


def test_settings_load() -> None:
    settings = WebhookSettings.load(
        {
            "url": {"disable_loopback": False},
            "headers": {"X-A": "${{ env.LG_WEBHOOK_A }}"},
            "secret": "k",
            "max_attempts": 5,
        },
        {},
        {"LG_WEBHOOK_A": "a", "BERTH_WEBHOOK_BACKOFF_BASE": "0.5"},
    )
    assert settings.policy.disable_loopback is False
    assert settings.headers == {"X-A": "a"}
    assert (settings.secret, settings.max_attempts, settings.backoff_base) == ("k", 5, 0.5)
    assert not settings.muted
    env_wins = WebhookSettings.load({"max_attempts": 5}, {}, {"BERTH_WEBHOOK_MAX_ATTEMPTS": "7"})
    assert env_wins.max_attempts == 7
    defaults = WebhookSettings.load({}, {"disable_webhooks": True}, {})
    assert (defaults.max_attempts, defaults.secret, defaults.muted) == (3, None, True)
    assert defaults.policy.disable_loopback is True
    for bad in ({"url": "x"}, {"max_attempts": 0}, {"max_attempts": "many"}):
        with pytest.raises(errors.ConfigError):
            WebhookSettings.load(bad, {}, {})
