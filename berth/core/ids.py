"""Identifiers: time-ordered UUIDv7 for new objects, UUIDv5 for default assistants."""

from __future__ import annotations

import functools
import uuid

import uuid_utils

#: The namespace LangGraph servers use to derive a graph's default assistant id.
ASSISTANT_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")


def new_id() -> str:
    return str(uuid_utils.uuid7())


@functools.cache  # asked on every run's admission; a project has a handful of graphs
def default_assistant_id(graph_id: str) -> str:
    return str(uuid.uuid5(ASSISTANT_NAMESPACE, graph_id))


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return False
    return True
