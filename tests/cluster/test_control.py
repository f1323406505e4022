"""Cross-node commands: answered by the target's handler, refused clearly, or timed out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.bus.fixtures import MakeBus
from tests.bus.helpers import sample

from threadwire.bus import keys
from threadwire.cluster import metrics
from threadwire.cluster.control import (
    CommandRefused,
    ControlChannel,
    ControlError,
    ControlTimeout,
    NodeUnreachable,
)
from threadwire.events import dumps

pytestmark = pytest.mark.redis


class Refusal(Exception):
    """An error with a `code`, as the runtime's refusals carry."""

    code = "run_finished"


@pytest.fixture
async def pair(redis_url: str, make_bus: MakeBus) -> AsyncIterator[tuple[ControlChannel, ...]]:
    """Two nodes' control channels, started; node-b answers `echo`, `refuse`, `crash`."""
    bus_a, bus_b = make_bus(redis_url), make_bus(redis_url)
    await bus_a.open()
    await bus_b.open()
    a, b = ControlChannel(bus_a, "node-a", timeout=5), ControlChannel(bus_b, "node-b", timeout=5)

    async def echo(args: dict[str, Any]) -> dict[str, Any]:
        return {"echo": args, "by": "node-b"}

    async def refuse(args: dict[str, Any]) -> dict[str, Any]:
        raise Refusal("run 'r1' already finished (completed)")

    async def crash(args: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("secret internals")

    b.handle("echo", echo)
    b.handle("refuse", refuse)
    b.handle("crash", crash)
    await a.start()
    await b.start()
    yield a, b
    await a.stop()
    await b.stop()


async def test_a_command_runs_on_the_target_and_returns_its_result(
    pair: tuple[ControlChannel, ControlChannel],
) -> None:
    a, _ = pair
    ok = sample(metrics.CLUSTER_CONTROL_REQUESTS_TOTAL, {"command": "echo", "outcome": "ok"})
    assert await a.request("node-b", "echo", {"x": 1}) == {"echo": {"x": 1}, "by": "node-b"}
    after = sample(metrics.CLUSTER_CONTROL_REQUESTS_TOTAL, {"command": "echo", "outcome": "ok"})
    assert after == ok + 1


async def test_concurrent_commands_get_their_own_answers(
    pair: tuple[ControlChannel, ControlChannel],
) -> None:
    a, _ = pair
    answers = await asyncio.gather(*(a.request("node-b", "echo", {"i": i}) for i in range(20)))
    assert [answer["echo"]["i"] for answer in answers] == list(range(20))


async def test_a_refusal_carries_the_handlers_code_and_message(
    pair: tuple[ControlChannel, ControlChannel],
) -> None:
    a, _ = pair
    with pytest.raises(CommandRefused) as caught:
        await a.request("node-b", "refuse", {"run_id": "r1"})
    assert caught.value.code == "run_finished"
    assert "already finished" in caught.value.message


async def test_a_crashing_handler_answers_without_leaking_its_exception(
    pair: tuple[ControlChannel, ControlChannel],
) -> None:
    a, _ = pair
    with pytest.raises(CommandRefused) as caught:
        await a.request("node-b", "crash")
    assert caught.value.code == "internal_error"
    assert "secret" not in caught.value.message


async def test_an_unknown_command_is_refused(pair: tuple[ControlChannel, ControlChannel]) -> None:
    a, _ = pair
    with pytest.raises(CommandRefused) as caught:
        await a.request("node-b", "reboot")
    assert caught.value.code == "unknown_command"


async def test_a_node_nobody_listens_for_is_unreachable_at_once(
    pair: tuple[ControlChannel, ControlChannel],
) -> None:
    a, _ = pair
    with pytest.raises(NodeUnreachable, match="node-gone"):
        async with asyncio.timeout(1):  # no waiting for a timeout: nobody received it
            await a.request("node-gone", "echo")


async def test_a_node_that_does_not_answer_times_out(
    pair: tuple[ControlChannel, ControlChannel],
) -> None:
    a, b = pair
    never = asyncio.Event()

    async def hang(args: dict[str, Any]) -> dict[str, Any]:
        await never.wait()
        return {}

    b.handle("hang", hang)
    with pytest.raises(ControlTimeout, match="did not answer"):
        await a.request("node-b", "hang", within=0.2)


async def test_a_command_for_this_node_runs_here(
    pair: tuple[ControlChannel, ControlChannel],
) -> None:
    _, b = pair
    assert await b.request("node-b", "echo", {"y": 2}) == {"echo": {"y": 2}, "by": "node-b"}
    with pytest.raises(CommandRefused):
        await b.request("node-b", "refuse")


async def test_stopping_fails_requests_still_waiting(
    pair: tuple[ControlChannel, ControlChannel],
) -> None:
    a, b = pair
    arrived, never = asyncio.Event(), asyncio.Event()

    async def hang(args: dict[str, Any]) -> dict[str, Any]:
        arrived.set()
        await never.wait()
        return {}

    b.handle("hang", hang)
    waiting = asyncio.create_task(a.request("node-b", "hang"))
    async with asyncio.timeout(5):
        await arrived.wait()
    await a.stop()
    with pytest.raises(ControlError, match="stopped"):
        await waiting


async def test_malformed_messages_are_ignored(
    pair: tuple[ControlChannel, ControlChannel],
) -> None:
    a, b = pair
    ns = a.bus.namespace
    for garbage in (b"nope", b"[]", dumps({"from": 1, "n": "x", "cmd": None})):
        await a.bus.publish_now(keys.control_channel(ns, "node-b"), garbage)
        await b.bus.publish_now(keys.reply_channel(ns, "node-a"), garbage)
    assert await a.request("node-b", "echo") == {"echo": {}, "by": "node-b"}


async def test_a_result_that_is_not_json_is_an_internal_error(
    pair: tuple[ControlChannel, ControlChannel],
) -> None:
    a, b = pair

    async def weird(args: dict[str, Any]) -> dict[str, Any]:
        return {"value": object()}

    b.handle("weird", weird)
    with pytest.raises(CommandRefused) as caught:
        await a.request("node-b", "weird")
    assert caught.value.code == "internal_error"
