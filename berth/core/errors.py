"""Berth's one error root; `api/errors.py` maps each branch to an HTTP status.

BerthError
├── NotFound            an id that does not exist (404)
├── Conflict            the object exists or is busy (409)
├── InvalidInput        a request the schema allows but the rules do not (422)
│   └── BadRequest      semantic misuse of an endpoint (400)
└── Unavailable         the server cannot take the work now (503)
"""

from __future__ import annotations


class BerthError(Exception):
    """Berth could not do what was asked."""

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (self.__doc__ or type(self).__name__).strip()
        super().__init__(self.message)


class NotFound(BerthError):
    """Not found."""


class Conflict(BerthError):
    """The request conflicts with the current state."""


class InvalidInput(BerthError):
    """The request is invalid."""


class BadRequest(InvalidInput):
    """The request cannot be served as asked."""


class Unavailable(BerthError):
    """The server is unavailable."""


class ConfigError(BerthError):
    """The project configuration is invalid."""
