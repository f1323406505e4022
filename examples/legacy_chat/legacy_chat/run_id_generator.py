"""Run IDs as the tools team made them a year later: thread_<thread>_run_<ms>_<8 hex>.

Nobody told the router."""

import secrets
import time


def make_run_id(thread_id):
    """A fresh, time-ordered run ID for `thread_id`."""
    return f"thread_{thread_id}_run_{int(time.time() * 1000)}_{secrets.token_hex(4)}"
