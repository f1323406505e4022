"""Background tasks: stopping them reliably, and how long to wait before a retry.

A cancellation can be lost: on Python 3.11 `asyncio.wait_for` (which redis-py uses for
socket writes) may swallow one when the awaited operation completes at the same moment,
and a loop then carries on as if never cancelled. So stopping cancels again until the
task has really ended, within a bound.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

log = logging.getLogger(__name__)


async def cancel_and_wait(task: asyncio.Task[Any] | None, *, within: float = 5.0) -> None:
    """Cancel `task` (repeatedly if it shrugs a cancellation off) and wait until it ended.

    Exceptions of the task are logged, not raised: stopping must not fail on them.
    """
    if task is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
        if loop.time() > deadline:
            log.error("task %s did not stop within %s s", task.get_name(), within)
            return
    if not task.cancelled() and task.exception() is not None:
        log.error("task %s had failed", task.get_name(), exc_info=task.exception())


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Capped exponential backoff with jitter: about `base * 2**attempt`, at most `cap`.

    >>> 0.025 <= backoff_delay(0, 0.05, 2.0) <= 0.05
    True
    >>> 1.0 <= backoff_delay(30, 0.05, 2.0) <= 2.0
    True
    """
    return min(cap, base * 2.0 ** min(attempt, 16)) * random.uniform(0.5, 1.0)
