"""Run IDs as the chat team made them first: run_<thread>_<8 hex>."""

import uuid


def generate_run_id(thread_id):
    """A fresh run ID for `thread_id`."""
    return f"run_{thread_id}_{uuid.uuid4().hex[:8]}"
