"""The bundled example project (`examples/langgraph.json`) that `berth dev` serves by default."""

from __future__ import annotations

from pathlib import Path

import langgraph_sdk
import pytest

from tests.conftest import StartServer

pytestmark = pytest.mark.anyio

EXAMPLES = Path(__file__).parents[2] / "examples" / "langgraph.json"


async def test_examples_serve(start_server: StartServer) -> None:
    server = start_server(config=EXAMPLES, name="examples")
    async with langgraph_sdk.get_client(url=server.url) as client:
        assistants = await client.assistants.search()
        assert {a["graph_id"] for a in assistants} == {"agent", "approval"}

        thread = await client.threads.create()
        tokens = [
            part.data[0]["content"]
            async for part in client.runs.stream(
                thread["thread_id"],
                "agent",
                input={"messages": [{"role": "user", "content": "hello berth"}]},
                stream_mode="messages-tuple",
            )
            if part.event == "messages"
        ]
        assert "".join(tokens) == "berth hello"

        approval = await client.threads.create()
        paused = await client.runs.wait(
            approval["thread_id"], "approval", input={"request": "ship it"}
        )
        assert paused["__interrupt__"][0]["value"]["draft"] == "I will ship it."  # type: ignore[index]
        done = await client.runs.wait(approval["thread_id"], "approval", command={"resume": True})
        assert done["result"] == "done"  # type: ignore[index]
