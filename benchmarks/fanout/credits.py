"""The in-process publishers' side of the credit loop (Python servers and the agent).

A `CreditBoard` listens on a UDP port of 127.0.0.1 for the load generator's grants and
lets each room's publisher go on while it has credit: `await board.acquire(room, k)`
before publishing event k. The Node server implements the same in JavaScript.
"""

from __future__ import annotations

import asyncio

from benchmarks.fanout.workload import CREDIT, STOP, decode_credits


class CreditBoard(asyncio.DatagramProtocol):
    """Events each room may publish, as granted by the load generator."""

    def __init__(self) -> None:
        self.allowed: dict[int, int] = {}
        self.stopped = False
        self._waiters: dict[int, asyncio.Future[None]] = {}

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if data[:1] == STOP:
            self.stopped = True
            for room in list(self._waiters):
                self._wake(room)
            return
        if data[:1] != CREDIT:
            return
        allowed = self.allowed
        for room, value in decode_credits(data):
            if value > allowed.get(room, 0):
                allowed[room] = value
                if room in self._waiters:
                    self._wake(room)

    def _wake(self, room: int) -> None:
        waiter = self._waiters.pop(room, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def reset(self) -> None:
        """Forget every grant and the stop (a new phase numbers events from 0 again)."""
        self.allowed.clear()
        self.stopped = False

    async def acquire(self, room: int, index: int) -> bool:
        """Wait until event `index` of `room` may be published; False once stopped."""
        while not self.stopped and index >= self.allowed.get(room, 0):
            waiter = asyncio.get_running_loop().create_future()
            self._waiters[room] = waiter
            await waiter
        return not self.stopped


async def open_board(port: int, host: str = "127.0.0.1") -> CreditBoard:
    """A board listening on `host:port` (UDP)."""
    loop = asyncio.get_running_loop()
    _, board = await loop.create_datagram_endpoint(CreditBoard, local_addr=(host, port))
    return board
