"""A node ``chat`` calling a scripted chat model that streams "hello there friend"."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, AnyMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

REPLY = "hello there friend"


class ScriptedChatModel(BaseChatModel):
    """Always answers ``reply``, streamed one word per chunk."""

    reply: str = REPLY

    @property
    def _llm_type(self) -> str:
        return "berth-scripted"

    def _words(self) -> list[str]:
        first, *rest = self.reply.split(" ")
        return [first, *(f" {word}" for word in rest)]

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(self.reply))])

    # BaseChatModel reports each yielded chunk to the callbacks (and so to the
    # "messages" stream mode) itself; calling run_manager here would double them.
    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for word in self._words():
            yield ChatGenerationChunk(message=AIMessageChunk(content=word))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for word in self._words():
            yield ChatGenerationChunk(message=AIMessageChunk(content=word))


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


model = ScriptedChatModel()


async def chat(state: State) -> dict[str, Any]:
    return {"messages": [await model.ainvoke(state["messages"])]}


graph = StateGraph(State).add_node(chat).add_edge(START, "chat").compile()
