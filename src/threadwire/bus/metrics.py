"""Prometheus metrics of the bus: traffic, lag, reconnects, losses.

Every metric name is a constant here, the one home for these wire names. The metrics
live in prometheus-client's default registry, which the gateway's `/metrics` serves.
Gauges are incremented and decremented (not set) so that several buses in one process
(tests, benchmarks) add up instead of overwriting each other.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram

BUS_MESSAGES_PUBLISHED_TOTAL: Final = "threadwire_bus_messages_published_total"
BUS_MESSAGES_RECEIVED_TOTAL: Final = "threadwire_bus_messages_received_total"
BUS_MESSAGES_DROPPED_TOTAL: Final = "threadwire_bus_messages_dropped_total"
BUS_PUBLISH_ERRORS_TOTAL: Final = "threadwire_bus_publish_errors_total"
BUS_RECONNECTS_TOTAL: Final = "threadwire_bus_reconnects_total"
BUS_DISCONNECTS_TOTAL: Final = "threadwire_bus_disconnects_total"
BUS_LISTENER_ERRORS_TOTAL: Final = "threadwire_bus_listener_errors_total"
BUS_LAG_SECONDS: Final = "threadwire_bus_lag_seconds"
BUS_LINKS_UP: Final = "threadwire_bus_links_up"
BUS_CHANNELS: Final = "threadwire_bus_channels"
BUS_OUTBOX: Final = "threadwire_bus_outbox"

messages_published = Counter(
    BUS_MESSAGES_PUBLISHED_TOTAL, "Event announcements sent to Redis by this node."
)
messages_received = Counter(
    BUS_MESSAGES_RECEIVED_TOTAL, "Event announcements received from other nodes."
)
messages_dropped = Counter(
    BUS_MESSAGES_DROPPED_TOTAL,
    "Announcements given up, by reason (outbox_full, undecodable); the store still "
    "has the events and subscribers back-fill them.",
    ["reason"],
)
publish_errors = Counter(
    BUS_PUBLISH_ERRORS_TOTAL, "Failed attempts to send a batch of announcements (retried)."
)
reconnects = Counter(
    BUS_RECONNECTS_TOTAL, "Times the subscriber link came back after it was lost."
)
disconnects = Counter(BUS_DISCONNECTS_TOTAL, "Times the subscriber link was lost.")
listener_errors = Counter(
    BUS_LISTENER_ERRORS_TOTAL, "Exceptions raised by listeners (logged and swallowed)."
)
lag_seconds = Histogram(
    BUS_LAG_SECONDS,
    "Time from publish on one node to receipt on another (wall clocks of both).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
links_up = Gauge(BUS_LINKS_UP, "Subscriber links to Redis that are up (1 per healthy node).")
channels = Gauge(BUS_CHANNELS, "Redis channels this node is subscribed to.")
outbox = Gauge(BUS_OUTBOX, "Announcements waiting to be sent to Redis.")
