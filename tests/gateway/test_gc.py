"""`settle_gc`: the start-up heap leaves the cyclic collector's reach, which still runs."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from threadwire.gateway.server import GC_THRESHOLDS, settle_gc


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_gc")
def test_settle_gc_freezes_the_heap_and_still_collects_new_cycles() -> None:
    gc.unfreeze()
    settle_gc()
    assert gc.get_threshold() == GC_THRESHOLDS
    assert gc.get_freeze_count() > 0

    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle made after start-up: refcounts alone never free it
    del a, b
    assert gc.collect() >= 2
