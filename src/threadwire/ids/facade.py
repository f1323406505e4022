"""`UnifiedIDManager`: the facade existing callers know (ids.md section 5)."""

from __future__ import annotations

from typing import Any

from threadwire.ids.formats import extract_thread_id, parse_run_id
from threadwire.ids.generate import new_run_id


class UnifiedIDManager:
    """The three static methods older code calls, each delegating to a module function.

    >>> UnifiedIDManager.parse_run_id("run_abc_0badf00d")["thread_id"]
    'abc'
    """

    @staticmethod
    def generate_run_id(thread_id: str) -> str:
        """`new_run_id(thread_id)`."""
        return new_run_id(thread_id)

    @staticmethod
    def parse_run_id(run_id: str) -> dict[str, Any]:
        """`parse_run_id(run_id).to_dict()`: a plain dict with `format` and `thread_id`."""
        return parse_run_id(run_id).to_dict()

    @staticmethod
    def extract_thread_id(run_id: str) -> str:
        """`extract_thread_id(run_id)`."""
        return extract_thread_id(run_id)
