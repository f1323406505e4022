"""The real `langgraph-sdk` client against a real `threadwire serve` with its defaults
(/work/shared/spec/langgraph.md), the way a chat front end uses it: create a thread,
find the assistant, stream a run in several modes, lose the stream and join it again
with the last event ID, cancel a run."""

from __future__ import annotations

from typing import Any, Final

import httpx
import pytest
from langgraph_sdk import get_client
from tests.e2e.serve import Server, unique

MODES: Final = ["values", "messages-tuple", "custom"]
SLOWISH: Final = {"prompt": "tides", "steps": 6, "delay_ms": 30}
LONG: Final = {"prompt": "tides", "steps": 1000, "delay_ms": 60000}
CANONICAL_PREFIX: Final = "thread_"


def sdk(server: Server, user: str) -> Any:
    return get_client(url=server.url + "/lg", api_key=server.token(user))


async def test_chat_front_end_flow(server: Server) -> None:
    user = unique()
    async with sdk(server, user) as client:
        thread = await client.threads.create(metadata={"title": "chat"})
        thread_id = thread["thread_id"]
        assert thread["metadata"]["title"] == "chat"
        # "Every registered agent is an assistant ... assistants.search lists them and
        # honours graph_id"
        found = await client.assistants.search(graph_id="demo")
        assert [a["graph_id"] for a in found] == ["demo"] and found[0]["name"] == "demo"
        assistant_id = found[0]["assistant_id"]
        assert (await client.assistants.get(assistant_id))["graph_id"] == "demo"

        # stream in the modes a chat UI asks for, and drop the stream part way
        stream = client.runs.stream(thread_id, assistant_id, input=SLOWISH, stream_mode=MODES)
        first = await anext(stream)
        # "The first part is exactly one metadata part {"run_id": ..., "attempt": 1}"
        assert first.event == "metadata" and first.data["attempt"] == 1
        run_id = first.data["run_id"]
        assert run_id.startswith(f"{CANONICAL_PREFIX}{thread_id}_run_")
        before = [first]
        while sum(p.event == "custom" for p in before) < 4:
            before.append(await anext(stream))
        await stream.aclose()  # "Disconnecting does not cancel the run."
        assert {p.event for p in before} <= {"metadata", "values", "messages", "custom"}
        last_id = before[-1].id
        assert last_id is not None

        # "runs.join_stream with last_event_id sends exactly the parts after it, stored
        # then live, no gap, no duplicate"
        after = [
            part
            async for part in client.runs.join_stream(
                thread_id, run_id, stream_mode=MODES, last_event_id=last_id
            )
        ]
        customs = [p.data for p in before + after if p.event == "custom"]
        seqs = [c["seq"] for c in customs]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
        assert customs[0]["type"] == "run_queued" and customs[-1]["type"] == "agent_completed"
        assert any(p.event == "values" for p in before + after)
        assert any(p.event == "messages" for p in before + after)
        # "The stream closes after the run's terminal event; by then runs.get already
        # shows the final status"
        run = await client.runs.get(thread_id, run_id)
        assert run["status"] == "success" and run["run_id"] == run_id

        # the same events through threadwire's own API
        async with httpx.AsyncClient(base_url=server.url) as http:
            answer = await http.get(
                f"/v1/threads/{thread_id}/events",
                params={"limit": 1000},
                headers=server.auth(user),
            )
        stored = [
            {"type": e["type"], "data": e["data"], "seq": e["seq"]}
            for e in answer.json()["events"]
            if e["run_id"] == run_id
        ]
        assert customs == stored

        # cancel a long run: 2xx, then interrupted; cancelling again is a 4xx
        long_run = await client.runs.create(thread_id, "demo", input=LONG)
        await client.runs.cancel(thread_id, long_run["run_id"], wait=True)
        cancelled = await client.runs.get(thread_id, long_run["run_id"])
        assert cancelled["status"] == "interrupted"
        with pytest.raises(httpx.HTTPStatusError) as again:
            await client.runs.cancel(thread_id, long_run["run_id"])
        assert 400 <= again.value.response.status_code < 500
        runs = await client.runs.list(thread_id)
        assert [r["run_id"] for r in runs] == [long_run["run_id"], run_id]  # newest first


async def test_sdk_default_stream_mode_and_bad_key(server: Server) -> None:
    async with sdk(server, unique()) as client:
        thread = await client.threads.create()
        parts = [p async for p in client.runs.stream(thread["thread_id"], "demo", input=SLOWISH)]
        assert parts[0].event == "metadata"
        assert parts[-1].event == "values" and parts[-1].data.get("result")
    async with get_client(url=server.url + "/lg", api_key="not-a-token") as bad:
        with pytest.raises(httpx.HTTPStatusError) as refused:
            await bad.threads.create()
        assert refused.value.response.status_code == 401
