"""LangGraph stream chunks → Agent Server SSE events (contract §6.3, §6.4)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from langchain_core.messages import BaseMessage, BaseMessageChunk

from berth import serde

#: API stream mode → the LangGraph stream mode that feeds it
LANGGRAPH_MODE = {
    "values": "values",
    "updates": "updates",
    "messages": "messages",
    "messages-tuple": "messages",
    "custom": "custom",
    "tasks": "tasks",
    "checkpoints": "checkpoints",
    "debug": "debug",
}


class ChunkTranslator:
    """Turns `(namespace, mode, payload)` chunks into `(event, json)` pairs for one run."""

    def __init__(self, modes: list[str]) -> None:
        self.modes = set(modes)
        self._partial: dict[str, BaseMessageChunk] = {}
        self._announced: set[str] = set()

    def translate(
        self, ns: tuple[str, ...], mode: str, payload: Any
    ) -> Iterator[tuple[str, bytes]]:
        suffix = "".join("|" + part for part in ns)
        if mode == "messages":
            message, meta = payload
            if "messages-tuple" in self.modes:
                yield "messages" + suffix, serde.dumps([message, meta])
            if "messages" in self.modes:
                yield from self._legacy_messages(message, meta)
            return
        yield mode + suffix, serde.dumps(payload)

    def _legacy_messages(
        self, message: BaseMessage, meta: dict[str, Any]
    ) -> Iterator[tuple[str, bytes]]:
        # The older `messages` mode: metadata once per message id, then the message so
        # far (`partial`) or whole (`complete`). Never namespaced.
        msg_id = message.id or ""
        if msg_id not in self._announced:
            self._announced.add(msg_id)
            yield "messages/metadata", serde.dumps({msg_id: {"metadata": meta}})
        if isinstance(message, BaseMessageChunk):
            so_far = self._partial.get(msg_id)
            so_far = message if so_far is None else so_far + message
            self._partial[msg_id] = so_far
            yield "messages/partial", serde.dumps([so_far])
        else:
            self._partial.pop(msg_id, None)
            yield "messages/complete", serde.dumps([message])
