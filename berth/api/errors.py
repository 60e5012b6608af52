"""The one place where errors become HTTP responses: `{"detail": …}` as the SDK reads it."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from berth.api.responses import JSONResponse
from berth.core import errors

log = logging.getLogger("berth.api")

#: most specific class first; found by walking the exception's MRO
STATUS: dict[type[errors.BerthError], int] = {
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.BadRequest: 400,
    errors.InvalidInput: 422,
    errors.Unavailable: 503,
    errors.ConfigError: 400,
    errors.BerthError: 500,
}


def status_for(exc: errors.BerthError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.BerthError)
    async def _berth(_: Request, exc: errors.BerthError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=status_for(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _describe(exc)}, status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A bug, not bad input: log it whole, answer JSON so the SDK can read it.
        log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse(
            {"detail": f"Internal server error: {type(exc).__name__}"}, status_code=500
        )

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )


def _describe(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "Invalid request"
