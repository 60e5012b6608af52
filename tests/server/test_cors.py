"""CORS: browsers (requests with an Origin) get the headers; other clients need none."""

from __future__ import annotations

import httpx

from tests.berth_server import BerthServer

ORIGIN = "https://studio.example"


def test_browser_requests_get_cors_headers(server: BerthServer) -> None:
    response = httpx.post(
        f"{server.url}/threads/search", json={"limit": 1}, headers={"Origin": ORIGIN}
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    exposed = response.headers["access-control-expose-headers"].lower()
    assert "x-pagination-total" in exposed
    assert "content-location" in exposed


def test_preflight_allows_any_method_and_header(server: BerthServer) -> None:
    response = httpx.options(
        f"{server.url}/runs/wait",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-api-key",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", ORIGIN)
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "x-api-key" in response.headers["access-control-allow-headers"].lower()


def test_requests_without_origin_carry_no_cors_headers(server: BerthServer) -> None:
    response = httpx.get(f"{server.url}/ok")
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
