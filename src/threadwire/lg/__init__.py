"""The LangGraph Platform thread/run API under `/lg`.

`threadwire.lg.router` is the API the `langgraph-sdk` client speaks to (create_app
includes it). Compiled LangGraph graphs run as agents through the runtime's adapter,
`threadwire.runtime.agents.langgraph`, so the runtime never reaches up into this web
layer and langgraph stays an optional extra.
"""

from __future__ import annotations
