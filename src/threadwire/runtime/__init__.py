"""The agent runtime: execution context, agent registry, supervisor, ingest, built-ins.

Every event is born here and leaves through the Coordinator (store assigns seq, then
the bus publishes); the runtime takes run IDs from the ID module only.
"""

from __future__ import annotations

from threadwire.runtime.context import RunContext, ToolCall
from threadwire.runtime.coordinator import Coordinator
from threadwire.runtime.errors import (
    AgentError,
    IngestError,
    InvalidInput,
    RunElsewhere,
    RunFinished,
    RuntimeRefusal,
    ShuttingDown,
    UnknownAgent,
)
from threadwire.runtime.ingest import Ingestor
from threadwire.runtime.registry import (
    ENTRY_POINT_GROUP,
    Agent,
    AgentRegistry,
    AgentSpec,
    default_registry,
    registry_from_settings,
)
from threadwire.runtime.supervisor import Supervisor

__all__ = [
    "ENTRY_POINT_GROUP",
    "Agent",
    "AgentError",
    "AgentRegistry",
    "AgentSpec",
    "Coordinator",
    "IngestError",
    "Ingestor",
    "InvalidInput",
    "RunContext",
    "RunElsewhere",
    "RunFinished",
    "RuntimeRefusal",
    "ShuttingDown",
    "Supervisor",
    "ToolCall",
    "UnknownAgent",
    "default_registry",
    "registry_from_settings",
]
