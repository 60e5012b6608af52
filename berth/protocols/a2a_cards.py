"""A2A agent cards: one per assistant, served by the card routes and `GetExtendedAgentCard`."""

from __future__ import annotations

from typing import Any

from a2a.types import a2a_pb2 as pb
from google.protobuf import json_format

from berth.core.models import Assistant

PROTOCOL_VERSION = "1.0"
#: what a v0.3 client reads from a card without `supportedInterfaces`
LEGACY_PROTOCOL_VERSION = "0.3.0"
INPUT_MODES = ["text/plain", "application/json"]
OUTPUT_MODES = ["text/plain", "application/json"]


def endpoint(base_url: str, assistant: Assistant) -> str:
    return f"{base_url.rstrip('/')}/a2a/{assistant.assistant_id}"


def card(
    assistant: Assistant, base_url: str, protocol_version: str = PROTOCOL_VERSION
) -> pb.AgentCard:
    """The card; a v0.3 caller gets its interface labelled with its own version."""
    url = endpoint(base_url, assistant)
    description = assistant.description or f"LangGraph assistant {assistant.name!r}"
    return pb.AgentCard(
        name=assistant.name,
        description=description,
        supported_interfaces=[
            pb.AgentInterface(
                url=url, protocol_binding="JSONRPC", protocol_version=protocol_version
            )
        ],
        version=str(assistant.version),
        capabilities=pb.AgentCapabilities(streaming=True, push_notifications=False),
        default_input_modes=INPUT_MODES,
        default_output_modes=OUTPUT_MODES,
        skills=[
            pb.AgentSkill(
                id=f"{assistant.graph_id}-main",
                name=assistant.name,
                description=description,
                tags=["langgraph", assistant.graph_id],
                input_modes=INPUT_MODES,
                output_modes=OUTPUT_MODES,
            )
        ],
    )


def card_json(assistant: Assistant, base_url: str) -> dict[str, Any]:
    """The card as v1.0 JSON, plus the top-level fields v0.3 clients look for."""
    data: dict[str, Any] = json_format.MessageToDict(card(assistant, base_url))
    data.setdefault("capabilities", {}).setdefault("pushNotifications", False)
    data["url"] = endpoint(base_url, assistant)
    data["preferredTransport"] = "JSONRPC"
    data["protocolVersion"] = LEGACY_PROTOCOL_VERSION
    return data
