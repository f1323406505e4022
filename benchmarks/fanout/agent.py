"""The threadwire agent of the in-process phase: `--agent benchmarks.fanout.agent:fanout`.

One run per room (thread). It emits up to `events` events of the workload with
`ctx.emit_nowait`, as an agent streaming tokens does: each event is persisted by
threadwire's store before it is delivered, and the agent goes on to the next one while
the store works, paced only by the load generator's credits like every other
in-process publisher (so at most a window of events per room is in flight).

Input: `{"room": int, "events": int, "pad": int, "credit_port": int}`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from benchmarks.fanout.credits import CreditBoard, open_board
from benchmarks.fanout.workload import EVENT_TYPE, now_us

if TYPE_CHECKING:
    from threadwire.runtime.context import RunContext

_boards: dict[int, asyncio.Task[CreditBoard]] = {}


async def _board(port: int) -> CreditBoard:
    """The process's one board for `port` (every run of the phase shares it)."""
    task = _boards.get(port)
    if task is None:
        task = _boards[port] = asyncio.get_running_loop().create_task(open_board(port))
    return await asyncio.shield(task)


async def fanout(ctx: RunContext, input: dict[str, Any]) -> dict[str, int]:
    """Emit the room's events while credit lasts; the result is how many were emitted."""
    room = int(input["room"])
    limit = int(input["events"])
    pad = "x" * int(input["pad"])
    board = await _board(int(input["credit_port"]))
    emitted = 0
    while emitted < limit and await board.acquire(room, emitted):
        # Same key order as workload.payload: the receivers find "i" then "t".
        ctx.emit_nowait(EVENT_TYPE, {"i": emitted, "t": now_us(), "pad": pad})
        emitted += 1
    await ctx.flush()
    return {"emitted": emitted}
