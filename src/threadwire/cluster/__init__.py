"""Cluster mode: node membership, dead-node recovery and cross-node commands over Redis.

Built on the Redis bus (`threadwire.bus.redis`), whose connections it shares. A node
in a cluster runs one `ClusterNode`; the pieces are usable on their own:
`Membership` (heartbeats), `DeadNodeDetector`, `end_runs_of_node`, `ControlChannel`.
"""

from __future__ import annotations

from threadwire.cluster.control import (
    CANCEL_RUN,
    CommandRefused,
    ControlChannel,
    ControlError,
    ControlTimeout,
    NodeUnreachable,
)
from threadwire.cluster.detector import DeadNodeDetector
from threadwire.cluster.membership import Membership
from threadwire.cluster.node import ClusterNode, ClusterSettings
from threadwire.cluster.recovery import NODE_LOST, Recovered, end_runs_of_node

__all__ = [
    "CANCEL_RUN",
    "NODE_LOST",
    "ClusterNode",
    "ClusterSettings",
    "CommandRefused",
    "ControlChannel",
    "ControlError",
    "ControlTimeout",
    "DeadNodeDetector",
    "Membership",
    "NodeUnreachable",
    "Recovered",
    "end_runs_of_node",
]
