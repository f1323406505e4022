"""threadwire: run AI agents and deliver every live event to the right user, in order."""

from __future__ import annotations

__version__ = "0.1.0"
