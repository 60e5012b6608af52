"""`JSONResponse`: orjson with Berth's encoder for messages, datetimes and models."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from berth import serde


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return serde.dumps(content)
