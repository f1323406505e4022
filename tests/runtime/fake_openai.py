"""A real HTTP server on loopback that speaks the streaming chat-completions wire format.

Scenarios are picked by the request's `model`: `text`, `tools` (a streamed tool call,
then an answer that uses the tool's result), `unknown-tool`, `error` (HTTP 500), `cut`
(the connection drops mid-stream) and `truncated` (the stream ends cleanly but without
a finish reason or `[DONE]`).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

API_KEY = "sk-test-very-secret"


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1764000000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body)}\n\n".encode()


def _text(model: str, parts: list[str]) -> list[bytes]:
    out = [_chunk(model, {"role": "assistant", "content": ""})]
    out += [_chunk(model, {"content": p}) for p in parts]
    out.append(_chunk(model, {}, "stop"))
    out.append(b"data: [DONE]\n\n")
    return out


def _tool_call(model: str, name: str, arguments: list[str]) -> list[bytes]:
    first = {"index": 0, "id": "call_1", "type": "function", "function": {"name": name}}
    out = [_chunk(model, {"role": "assistant", "tool_calls": [first]})]
    for part in arguments:
        out.append(_chunk(model, {"tool_calls": [{"index": 0, "function": {"arguments": part}}]}))
    out.append(_chunk(model, {}, "tool_calls"))
    out.append(b"data: [DONE]\n\n")
    return out


class FakeOpenAI:
    """The app and what it was asked; `base_url` once started."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.auth: list[str | None] = []
        self.base_url = ""
        self.app = Starlette(
            routes=[Route("/v1/chat/completions", self.complete, methods=["POST"])]
        )

    async def complete(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        self.auth.append(request.headers.get("authorization"))
        model = body["model"]
        answered_tool = any(m.get("role") == "tool" for m in body["messages"])
        if model == "error":
            return JSONResponse(
                {"error": {"message": f"internal failure, key {API_KEY}", "type": "server"}},
                status_code=500,
            )
        if model == "text":
            return self._stream(_text(model, ["Hel", "lo", " world"]))
        if model in ("tools", "unknown-tool") and not answered_tool:
            name = "add" if model == "tools" else "nope"
            return self._stream(_tool_call(model, name, ['{"a": 2', ', "b": 3}']))
        if model in ("tools", "unknown-tool"):
            result = next(m["content"] for m in body["messages"] if m.get("role") == "tool")
            return self._stream(_text(model, ["The sum is ", result]))
        if model == "cut":
            return StreamingResponse(self._cut(model), media_type="text/event-stream")
        if model == "truncated":
            return self._stream(_text(model, ["half an"])[:-2])
        return JSONResponse({"error": {"message": "no such model"}}, status_code=404)

    def _stream(self, chunks: list[bytes]) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk

        return StreamingResponse(body(), media_type="text/event-stream")

    async def _cut(self, model: str) -> AsyncIterator[bytes]:
        yield _chunk(model, {"role": "assistant", "content": "I was say"})
        raise ConnectionAbortedError("the fake upstream drops the connection")


@asynccontextmanager
async def serve_fake_openai() -> AsyncIterator[FakeOpenAI]:
    """Run the fake on a free loopback port for the duration of the block."""
    fake = FakeOpenAI()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # clients queue in the backlog until the server accepts: no start race
    host, port = sock.getsockname()
    fake.base_url = f"http://{host}:{port}/v1"
    config = uvicorn.Config(
        fake.app, lifespan="off", ws="none", log_level="critical", access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield fake
    finally:
        server.should_exit = True
        await task
        sock.close()
