"""`/ok`, `/info` and friends."""

from __future__ import annotations

from typing import Any

import langgraph.version
from fastapi import APIRouter, Depends

import berth
from berth.api.deps import Components, components, truthy
from berth.api.responses import JSONResponse

router = APIRouter(tags=["system"])


@router.api_route("/ok", methods=["GET", "HEAD"])
@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def ok(check_db: str | None = None, c: Components = Depends(components)) -> Any:
    if truthy(check_db):
        try:
            await c.storage.db.read(lambda conn: conn.exec_driver_sql("SELECT 1").scalar())
        except Exception as exc:
            return JSONResponse({"ok": False, "detail": str(exc)}, status_code=500)
    return {"ok": True}


@router.api_route("/info", methods=["GET", "HEAD"])
async def info(c: Components = Depends(components)) -> dict[str, Any]:
    return {
        "version": berth.__version__,
        "server": "berth",
        "langgraph_py_version": langgraph.version.__version__,
        "flags": {
            "assistants": True,
            "crons": True,
            "langsmith": False,
            "strict_resume": True,
        },
        "host": {
            "kind": "self-hosted",
            "database": c.storage.db.name,
        },
    }
