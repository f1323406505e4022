"""Built-in agents: `demo` (deterministic, offline) and `chat` (OpenAI-compatible endpoints)."""

from __future__ import annotations
