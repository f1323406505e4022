"""Every Redis key and channel name threadwire uses, in one place.

All names start with a namespace (default `threadwire`), so several clusters may share
one Redis server. The namespace matters even across database numbers: Redis pub/sub
channels are global to the server, not per database.

>>> thread_channel("threadwire", "abc")
'threadwire:thread:abc'
>>> node_key("tw2", "node-a")
'tw2:node:node-a'
"""

from __future__ import annotations

from typing import Final

DEFAULT_NAMESPACE: Final = "threadwire"

THREAD_CHANNEL: Final = "{ns}:thread:{thread_id}"
"""Pub/sub channel announcing a thread's stored events (the doorbell)."""

NODES: Final = "{ns}:nodes"
"""Sorted set of known nodes, scored by their last heartbeat (ms since the epoch)."""

NODE_KEY: Final = "{ns}:node:{node_id}"
"""A node's heartbeat: refreshed every interval with a TTL; gone means presumed dead."""

NODE_TOMBSTONE: Final = "{ns}:node:{node_id}:dead"
"""Set when a node is declared dead: its old incarnation must not heartbeat back in."""

NODE_RECOVERY_LOCK: Final = "{ns}:node:{node_id}:recovery"
"""SET NX lock: only the holder fails a dead node's unfinished runs."""

CONTROL_CHANNEL: Final = "{ns}:control:{node_id}"
"""Pub/sub channel where a node receives commands from other nodes (e.g. cancel a run)."""

REPLY_CHANNEL: Final = "{ns}:reply:{node_id}"
"""Pub/sub channel where a node receives answers to the commands it sent."""


def thread_channel(namespace: str, thread_id: str) -> str:
    """The channel of `thread_id`'s events."""
    return THREAD_CHANNEL.format(ns=namespace, thread_id=thread_id)


def nodes_key(namespace: str) -> str:
    """The sorted set of nodes."""
    return NODES.format(ns=namespace)


def node_key(namespace: str, node_id: str) -> str:
    """The heartbeat key of `node_id`."""
    return NODE_KEY.format(ns=namespace, node_id=node_id)


def node_tombstone(namespace: str, node_id: str) -> str:
    """The marker set when `node_id` was declared dead."""
    return NODE_TOMBSTONE.format(ns=namespace, node_id=node_id)


def node_recovery_lock(namespace: str, node_id: str) -> str:
    """The lock held while `node_id`'s unfinished runs are failed."""
    return NODE_RECOVERY_LOCK.format(ns=namespace, node_id=node_id)


def control_channel(namespace: str, node_id: str) -> str:
    """The channel `node_id` takes commands on."""
    return CONTROL_CHANNEL.format(ns=namespace, node_id=node_id)


def reply_channel(namespace: str, node_id: str) -> str:
    """The channel `node_id` receives command answers on."""
    return REPLY_CHANNEL.format(ns=namespace, node_id=node_id)
