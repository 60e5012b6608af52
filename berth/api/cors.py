"""CORS for browsers: Starlette's middleware, for the requests that carry an Origin.

Browsers send `Origin` on every cross-origin request (and on the preflight), and only
browsers act on CORS headers. Other clients (the SDK, RemoteGraph, MCP and A2A clients)
skip the middleware, which otherwise wraps every response's `send` to add headers no
one reads: about 3% of a small run's server CPU.
"""

from __future__ import annotations

from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send


class BrowserCORS:
    def __init__(self, app: ASGIApp, /, **options: Any) -> None:
        self.app = app
        self.cors = CORSMiddleware(app, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and any(name == b"origin" for name, _ in scope["headers"]):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
