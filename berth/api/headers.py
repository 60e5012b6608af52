"""Request headers copied into a run's `config.configurable` (contract §9).

Configured by `langgraph.json` `http.configurable_headers`: `includes` (or `include`) and
`excludes` (or `exclude`), literal names or `*` patterns, matched case-insensitively;
excludes win. Credentials are never copied, whatever the patterns say.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

from berth.core import errors

#: never copied: a graph's config is visible to graph code and in stored runs
NEVER = frozenset({"authorization", "x-api-key", "x-service-key", "x-tenant-id", "cookie"})


def _patterns(config: Mapping[str, Any], *keys: str) -> tuple[str, ...]:
    for key in keys:
        value = config.get(key)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
            raise errors.ConfigError(f"http.configurable_headers.{key} must be a list of strings")
        return tuple(p.lower() for p in value)
    return ()


@dataclasses.dataclass(frozen=True)
class HeaderPolicy:
    includes: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()

    @classmethod
    def from_http(cls, http: Mapping[str, Any]) -> HeaderPolicy:
        config = http.get("configurable_headers") or {}
        if not isinstance(config, Mapping):
            raise errors.ConfigError("http.configurable_headers must be an object")
        return cls(
            includes=_patterns(config, "includes", "include"),
            excludes=_patterns(config, "excludes", "exclude"),
        )

    def select(self, headers: Iterable[tuple[str, str]]) -> dict[str, str]:
        """The headers to copy, by lower-cased name."""
        if not self.includes:
            return {}
        chosen: dict[str, str] = {}
        for name, value in headers:
            key = name.lower()
            if key in NEVER or any(fnmatch.fnmatchcase(key, p) for p in self.excludes):
                continue
            if any(fnmatch.fnmatchcase(key, p) for p in self.includes):
                chosen[key] = value
        return chosen
