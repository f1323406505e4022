"""The gateway's Prometheus metrics: every name is a constant here, in one place.

ID parse counters live in `threadwire.ids` and run metrics in `threadwire.runtime`;
`/metrics` exposes the default registry, so all of them appear together.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram

CONNECTIONS: Final = "threadwire_ws_connections"
CONNECTIONS_TOTAL: Final = "threadwire_ws_connections_opened_total"
SUBSCRIPTIONS: Final = "threadwire_subscriptions"
SSE_STREAMS: Final = "threadwire_sse_streams"
EVENTS_PUBLISHED: Final = "threadwire_events_published_total"
EVENTS_DELIVERED: Final = "threadwire_events_delivered_total"
ACKS: Final = "threadwire_acks_total"
LAGGING_CLOSES: Final = "threadwire_lagging_closes_total"
REFUSALS: Final = "threadwire_refusals_total"
BACKFILLS: Final = "threadwire_backfills_total"
BACKFILLED_EVENTS: Final = "threadwire_backfilled_events_total"
STORE_APPEND_SECONDS: Final = "threadwire_store_append_seconds"
HTTP_REQUESTS: Final = "threadwire_http_requests_total"
HTTP_REQUEST_SECONDS: Final = "threadwire_http_request_seconds"

# Refusal reasons (the `reason` label of REFUSALS).
REASON_UNAUTHORIZED: Final = "unauthorized"
REASON_FORBIDDEN: Final = "forbidden"
REASON_BAD_REQUEST: Final = "bad_request"
REASON_FRAME_TOO_LARGE: Final = "frame_too_large"
REASON_BODY_TOO_LARGE: Final = "body_too_large"
REASON_RATE_LIMITED: Final = "rate_limited"
REASON_TOO_MANY_SUBSCRIPTIONS: Final = "too_many_subscriptions"
REASON_TOO_MANY_CONNECTIONS: Final = "too_many_connections"
REASON_SHUTTING_DOWN: Final = "shutting_down"
REASON_GONE: Final = "gone"
REASON_INGEST: Final = "ingest"

# Why a live subscription went back to the store (the `reason` label of BACKFILLS).
BACKFILL_SEQ_JUMP: Final = "seq_jump"
BACKFILL_LINK: Final = "link"

connections = Gauge(CONNECTIONS, "Open WebSocket connections")
connections_total = Counter(CONNECTIONS_TOTAL, "WebSocket connections accepted")
subscriptions = Gauge(SUBSCRIPTIONS, "Active thread subscriptions (WebSocket and SSE)")
sse_streams = Gauge(SSE_STREAMS, "Open Server-Sent Events streams")
events_published = Counter(
    EVENTS_PUBLISHED, "Stored events announced to this node's hub for fan-out"
)
events_delivered = Counter(
    EVENTS_DELIVERED, "Event frames handed to a client connection", ["transport"]
)
acks = Counter(ACKS, "Client acknowledgements received")
lagging_closes = Counter(
    LAGGING_CLOSES, "Connections closed because their send queue overflowed", ["transport"]
)
refusals = Counter(REFUSALS, "Requests, frames and connections refused", ["reason"])
backfills = Counter(
    BACKFILLS,
    "Live subscriptions that went back to the store to repair a gap: a seq jump, or the "
    "bus link coming back up",
    ["reason"],
)
backfilled_events = Counter(
    BACKFILLED_EVENTS,
    "Events repairs delivered from the store: those the bus missed (and any stored meanwhile)",
)
store_append_seconds = Histogram(
    STORE_APPEND_SECONDS,
    "Latency of one store append through the coordinator",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
http_requests = Counter(HTTP_REQUESTS, "HTTP requests answered", ["method", "route", "status"])
http_request_seconds = Histogram(
    HTTP_REQUEST_SECONDS, "Time to the start of the HTTP response", ["method", "route"]
)
