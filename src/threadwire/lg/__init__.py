"""The LangGraph Platform thread/run API under `/lg`, and LangGraph graphs as agents.

`threadwire.lg.router` is the API the `langgraph-sdk` client speaks to (create_app
includes it); `threadwire.lg.graph_agent` runs a compiled LangGraph graph as a
threadwire agent. This module imports neither, so the runtime can load the graph
adapter without pulling in the web layer, and langgraph stays an optional extra.
"""

from __future__ import annotations
