"""Stopping background tasks: a cancellation that is shrugged off is repeated."""

from __future__ import annotations

import asyncio
import logging

import pytest

from threadwire.bus.tasks import cancel_and_wait


async def test_a_task_that_swallows_a_cancellation_is_stopped_anyway() -> None:
    swallowed = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            swallowed.set()  # what a lost cancellation looks like to a loop
        await asyncio.Event().wait()

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await cancel_and_wait(task)
    assert swallowed.is_set()
    assert task.cancelled()


async def test_a_task_that_will_not_stop_is_reported_and_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()

    async def immortal() -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(immortal(), name="immortal")
    await asyncio.sleep(0)
    await cancel_and_wait(task, within=0.3)
    assert "immortal did not stop" in caplog.text
    release.set()
    await task


async def test_a_failed_task_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def broken() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(broken(), name="broken")
    await asyncio.wait({task})
    with caplog.at_level(logging.ERROR):
        await cancel_and_wait(task)
    assert "broken had failed" in caplog.text
    await cancel_and_wait(None)
