"""LangGraph graphs on langchain-core's fake chat models, loaded as `--agent module:graph`.

`graph` is a small ReAct loop: the first model turn calls the `lookup` tool, the second
streams its answer token by token; the agent node also writes a custom event.
`stuck` waits forever (to be cancelled); `broken` raises.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from langchain_core.language_models.fake_chat_models import (
    FakeMessagesListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

ANSWER = "Forty two is the answer"
CALL_ID = "call_lookup_1"


@tool
def lookup(query: str) -> str:
    """Look `query` up."""
    return f"found: {query}"


async def agent(state: MessagesState) -> dict[str, Any]:
    """Call the tool first; once its result is in, stream the answer."""
    get_stream_writer()({"stage": "thinking", "turn": len(state["messages"])})
    if isinstance(state["messages"][-1], ToolMessage):
        writer = GenericFakeChatModel(messages=iter([ANSWER]))  # streams word by word
        return {"messages": [await writer.ainvoke(state["messages"])]}
    call = {"name": "lookup", "args": {"query": "meaning"}, "id": CALL_ID}
    planner = FakeMessagesListChatModel(responses=[AIMessage("", tool_calls=[call])])
    return {"messages": [await planner.ainvoke(state["messages"])]}


def route(state: MessagesState) -> Literal["tools", "__end__"]:
    """To the tools while the last message calls one."""
    last = state["messages"][-1]
    return "tools" if isinstance(last, AIMessage) and last.tool_calls else "__end__"


def _react() -> Any:
    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([lookup]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route, ["tools", END])
    builder.add_edge("tools", "agent")
    return builder.compile()


async def _wait_forever(state: MessagesState) -> dict[str, Any]:
    get_stream_writer()("waiting")
    await asyncio.Event().wait()
    return {}


async def _fail(state: MessagesState) -> dict[str, Any]:
    raise RuntimeError("the graph broke")


def _single(name: str, node: Any) -> Any:
    builder = StateGraph(MessagesState)
    builder.add_node(name, node)
    builder.add_edge(START, name)
    builder.add_edge(name, END)
    return builder.compile()


graph = _react()
stuck = _single("wait", _wait_forever)
broken = _single("fail", _fail)
