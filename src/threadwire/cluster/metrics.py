"""Prometheus metrics of cluster mode: membership, dead nodes, orphaned runs, control commands.

Every metric name is a constant here, the one home for these wire names. The metrics
live in prometheus-client's default registry, which the gateway's `/metrics` serves.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge

CLUSTER_LIVE_NODES: Final = "threadwire_cluster_live_nodes"
CLUSTER_HEARTBEAT_FAILURES_TOTAL: Final = "threadwire_cluster_heartbeat_failures_total"
CLUSTER_FENCED_TOTAL: Final = "threadwire_cluster_fenced_total"
CLUSTER_NODES_LOST_TOTAL: Final = "threadwire_cluster_nodes_lost_total"
CLUSTER_RECOVERY_FAILURES_TOTAL: Final = "threadwire_cluster_recovery_failures_total"
CLUSTER_ORPHANED_RUNS_TOTAL: Final = "threadwire_cluster_orphaned_runs_total"
CLUSTER_CONTROL_REQUESTS_TOTAL: Final = "threadwire_cluster_control_requests_total"
CLUSTER_CONTROL_HANDLED_TOTAL: Final = "threadwire_cluster_control_handled_total"

live_nodes = Gauge(CLUSTER_LIVE_NODES, "Nodes with a live heartbeat, as this node last saw.")
heartbeat_failures = Counter(
    CLUSTER_HEARTBEAT_FAILURES_TOTAL, "Heartbeats this node could not write to Redis."
)
fenced = Counter(
    CLUSTER_FENCED_TOTAL, "Times this node found itself declared dead by the others."
)
nodes_lost = Counter(
    CLUSTER_NODES_LOST_TOTAL, "Dead nodes whose unfinished runs this node ended."
)
recovery_failures = Counter(
    CLUSTER_RECOVERY_FAILURES_TOTAL, "Attempts to end a dead node's runs that failed (retried)."
)
orphaned_runs = Counter(
    CLUSTER_ORPHANED_RUNS_TOTAL,
    "Unfinished runs of dead nodes, by outcome: failed (given agent_error node_lost) or "
    "settled (their terminal event existed; only the status was brought in line).",
    ["outcome"],
)
control_requests = Counter(
    CLUSTER_CONTROL_REQUESTS_TOTAL,
    "Commands sent to other nodes, by command and outcome (ok, refused, timeout, unreachable).",
    ["command", "outcome"],
)
control_handled = Counter(
    CLUSTER_CONTROL_HANDLED_TOTAL,
    "Commands from other nodes handled here, by command and outcome (ok, refused, error).",
    ["command", "outcome"],
)
