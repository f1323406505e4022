"""Fixtures of the black-box suite: a real `threadwire serve` process per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.e2e.serve import Server, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`threadwire serve` with its defaults (SQLite in its cwd), shared by the module;
    tests isolate themselves by user and thread names."""
    cwd = tmp_path_factory.mktemp("serve")
    running = start_server(cwd)
    try:
        yield running
    finally:
        running.stop()
