"""Redis pub/sub bus: the cluster's doorbell, one channel per thread (ADR 0060).

Each node holds one subscriber connection, owned by a reader task, and subscribes a
thread's channel only while it has local listeners for that thread (reference
counting). `publish` serializes each event once, delivers it to this node's listeners
at once, and queues it in the outbox, whose task pipelines PUBLISH commands to Redis;
other nodes deliver it from the message without reading the store.

Pub/sub keeps nothing for a subscriber that is away, so the reader reconnects with
backoff, subscribes every channel again, and only then reports the link up with a new
generation (`SupportsLink`): that is the hub's cue to back-fill from the store.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, Connection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from threadwire.bus import keys
from threadwire.bus import metrics as m
from threadwire.bus.base import Listener
from threadwire.bus.link import LinkListener, LinkState
from threadwire.bus.outbox import Outbox
from threadwire.bus.tasks import backoff_delay, cancel_and_wait
from threadwire.bus.wire import BadMessage, decode_envelope, encode
from threadwire.events import Event

log = logging.getLogger(__name__)

RawHandler = Callable[[bytes], None]
"""Called with the payload of each message on a raw channel; must not block."""

SUBSCRIBE_CHUNK: Final = 1000
"""Channels per SUBSCRIBE command when subscribing everything again after a reconnect."""


class BusUnavailable(ConnectionError):
    """Redis cannot be reached, or the subscriber link is down (readiness fails)."""


class _LinkDead(Exception):
    """The subscriber connection stopped answering."""


class RedisBus:
    """A `Bus` over Redis pub/sub; also `SupportsLink` and raw channels for the cluster.

    `url` may carry `?namespace=NAME` (default `threadwire`) so that several clusters
    share one Redis server; `origin` names this node in its messages (default: a
    random token), so that it skips its own messages, which it delivered locally.
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str | None = None,
        origin: str | None = None,
        connect_timeout: float = 5.0,
        health_interval: float = 5.0,
        backoff: tuple[float, float] = (0.05, 2.0),
        max_batch: int = 512,
        max_outbox: int = 100_000,
        flush_timeout: float = 2.0,
    ) -> None:
        self.url = url
        redis_url, url_namespace = split_namespace(url)
        self.namespace = namespace or url_namespace or keys.DEFAULT_NAMESPACE
        self.origin = origin or random.randbytes(8).hex()
        self._redis_url = redis_url
        self._connect_timeout = connect_timeout
        self._health_interval = health_interval
        self._backoff = backoff
        self._flush_timeout = flush_timeout

        self._client: Redis | None = None
        self._conn: AbstractConnection | None = None
        self._thread_listeners: dict[str, list[Listener]] = {}
        self._channel_thread: dict[str, str] = {}
        self._raw_handlers: dict[str, list[RawHandler]] = {}
        # Subscription bookkeeping on the current connection (cleared when it drops):
        self._confirmed: set[str] = set()  # last command sent was SUBSCRIBE, and confirmed
        self._requested: set[str] = set()  # last command sent was SUBSCRIBE, unconfirmed
        self._pending: dict[str, deque[list[asyncio.Future[None]]]] = {}
        self._resubscribing: set[str] | None = None

        self._link = LinkState(connected=False, generation=0)
        self._link_listeners: list[LinkListener] = []
        self._link_up = asyncio.Event()
        self._outbox = Outbox(
            lambda: self.client, max_batch=max_batch, max_size=max_outbox, backoff=backoff
        )
        self._reader: asyncio.Task[None] | None = None
        self._closed = False

    # lifecycle

    async def open(self) -> None:
        """Connect, start the reader and writer; raise BusUnavailable when Redis is not there."""
        self._client = Redis.from_url(
            self._redis_url,
            socket_connect_timeout=self._connect_timeout,
            socket_timeout=self._connect_timeout,
            retry=Retry(NoBackoff(), 1),
        )
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            await self._client.aclose()
            self._client = None
            raise BusUnavailable(f"cannot reach Redis at {redact(self.url)}: {exc}") from exc
        self._reader = asyncio.create_task(self._run_reader(), name="threadwire-bus-reader")
        self._outbox.start()
        try:
            await asyncio.wait_for(self._link_up.wait(), self._connect_timeout)
        except TimeoutError:
            await self.close()
            raise BusUnavailable(
                f"no subscriber link to Redis at {redact(self.url)} "
                f"within {self._connect_timeout} s"
            ) from None

    async def close(self) -> None:
        """Flush queued announcements (briefly), then disconnect; listeners get nothing more."""
        if self._closed:
            return
        self._closed = True
        self._link_listeners.clear()
        await self._outbox.stop(self._flush_timeout)
        await cancel_and_wait(self._reader)
        await self._drop_connection()
        self._set_link(False)
        self._thread_listeners.clear()
        self._channel_thread.clear()
        self._raw_handlers.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def flush(self) -> None:
        """Wait until every announcement queued so far reached Redis (bound it with a timeout)."""
        await self._outbox.flush()

    async def ping(self) -> None:
        """Raise BusUnavailable unless Redis answers and the subscriber link is up."""
        if self._client is None or self._closed:
            raise BusUnavailable("the bus is not open")
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            raise BusUnavailable(f"Redis at {redact(self.url)} does not answer: {exc}") from exc
        if not self._link.connected:
            raise BusUnavailable("the subscriber link to Redis is down (reconnecting)")

    @property
    def client(self) -> Redis:
        """The command connection pool (the cluster's heartbeats and locks use it)."""
        if self._client is None:
            raise BusUnavailable("the bus is not open")
        return self._client

    # Bus

    async def publish(self, events: Sequence[Event]) -> None:
        """Deliver to local listeners now; queue one message per event for the other nodes.

        Never raises on a Redis outage: the store already holds the events, the writer
        retries, and nodes that missed them back-fill when their link comes back.
        """
        if self._closed:
            return
        sent_at = time.time()
        for event in events:
            channel = keys.thread_channel(self.namespace, event.thread_id)
            self._outbox.put(channel, encode(event.to_json(), origin=self.origin, sent_at=sent_at))
            for listener in tuple(self._thread_listeners.get(event.thread_id, ())):
                _call(listener, event)

    async def subscribe(self, thread_id: str, listener: Listener) -> None:
        """Add a listener; the first one of a thread subscribes its channel.

        Returns once Redis confirmed the subscription, so that every event published
        afterwards reaches `listener`; while the link is down it returns at once, and
        the link's next `connected=True` transition says when to back-fill.
        """
        channel = keys.thread_channel(self.namespace, thread_id)
        self._thread_listeners.setdefault(thread_id, []).append(listener)
        self._channel_thread[channel] = thread_id
        await self._want(channel)

    async def unsubscribe(self, thread_id: str, listener: Listener) -> None:
        """Remove a listener; the last one of a thread unsubscribes its channel."""
        listeners = self._thread_listeners.get(thread_id)
        if not listeners or listener not in listeners:
            return
        listeners.remove(listener)
        if not listeners:
            del self._thread_listeners[thread_id]
            channel = keys.thread_channel(self.namespace, thread_id)
            self._channel_thread.pop(channel, None)
            await self._unwant(channel)

    # SupportsLink

    @property
    def link(self) -> LinkState:
        """The subscriber link's state (see `threadwire.bus.link`)."""
        return self._link

    def add_link_listener(self, listener: LinkListener) -> None:
        """Call `listener` on each later transition of the subscriber link."""
        self._link_listeners.append(listener)

    def remove_link_listener(self, listener: LinkListener) -> None:
        """Stop calling `listener`."""
        if listener in self._link_listeners:
            self._link_listeners.remove(listener)

    # raw channels (cluster control messages ride on the same subscriber connection)

    async def subscribe_channel(self, channel: str, handler: RawHandler) -> None:
        """Call `handler` with each payload published on `channel` (a full channel name)."""
        self._raw_handlers.setdefault(channel, []).append(handler)
        await self._want(channel)

    async def unsubscribe_channel(self, channel: str, handler: RawHandler) -> None:
        """Stop calling `handler` for `channel`."""
        handlers = self._raw_handlers.get(channel)
        if not handlers or handler not in handlers:
            return
        handlers.remove(handler)
        if not handlers:
            del self._raw_handlers[channel]
            await self._unwant(channel)

    async def publish_now(self, channel: str, payload: bytes) -> int:
        """PUBLISH at once (not queued); the number of nodes subscribed to `channel`."""
        try:
            return int(await self.client.publish(channel, payload))
        except (RedisError, OSError) as exc:
            raise BusUnavailable(f"cannot publish on {channel!r}: {exc}") from exc

    # subscriptions

    def _wanted(self) -> list[str]:
        return [*self._channel_thread, *self._raw_handlers]

    def _is_wanted(self, channel: str) -> bool:
        return channel in self._channel_thread or channel in self._raw_handlers

    async def _want(self, channel: str) -> None:
        if channel in self._confirmed:
            return
        conn = self._conn
        if conn is None:
            return  # subscribed when the link comes back, which the link signal announces
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        batches = self._pending.setdefault(channel, deque())
        if channel in self._requested:
            batches[-1].append(waiter)
        else:
            self._requested.add(channel)
            batches.append([waiter])
            try:
                await conn.send_command("SUBSCRIBE", channel)
            except (RedisError, OSError) as exc:
                log.debug("SUBSCRIBE %s failed (%s); the reader reconnects", channel, exc)
                return
        await waiter

    async def _unwant(self, channel: str) -> None:
        if channel in self._confirmed:
            self._confirmed.discard(channel)
            m.channels.dec()
        self._requested.discard(channel)
        conn = self._conn
        if conn is not None:
            try:
                await conn.send_command("UNSUBSCRIBE", channel)
            except (RedisError, OSError) as exc:
                log.debug("UNSUBSCRIBE %s failed (%s); the reader reconnects", channel, exc)

    def _on_subscribed(self, channel: str) -> None:
        batches = self._pending.get(channel)
        if batches:
            for waiter in batches.popleft():
                if not waiter.done():
                    waiter.set_result(None)
            if not batches:
                del self._pending[channel]
        if channel in self._requested and channel not in self._pending:
            self._requested.discard(channel)
            if self._is_wanted(channel) and channel not in self._confirmed:
                self._confirmed.add(channel)
                m.channels.inc()
        if self._resubscribing is not None:
            self._resubscribing.discard(channel)
            if not self._resubscribing:
                self._resubscribing = None
                self._set_link(True)

    # the reader: one subscriber connection, reconnected forever

    async def _run_reader(self) -> None:
        attempt = 0
        down_since: float | None = None
        while True:
            try:
                conn = await self._connect()
                if down_since is not None:
                    log.info(
                        "bus link to Redis restored after %.1f s (%d attempts)",
                        time.monotonic() - down_since,
                        attempt,
                    )
                attempt, down_since = 0, None
                await self._read(conn)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, _LinkDead) as exc:
                if down_since is None:
                    log.warning("bus link to Redis lost: %s; reconnecting", exc)
            except Exception:
                log.exception("bus reader failed unexpectedly; reconnecting")
            finally:
                await self._drop_connection()
                self._set_link(False)
            down_since = down_since if down_since is not None else time.monotonic()
            await asyncio.sleep(backoff_delay(attempt, *self._backoff))
            attempt += 1

    async def _connect(self) -> AbstractConnection:
        params: dict[str, Any] = dict(parse_url(self._redis_url))
        connection_class = params.pop("connection_class", Connection)
        conn: AbstractConnection = connection_class(
            **params,
            protocol=2,  # subscription messages as plain replies, not RESP3 pushes
            retry=Retry(NoBackoff(), 0),  # this reader does the retrying, with backoff
            socket_connect_timeout=self._connect_timeout,
            socket_timeout=self._connect_timeout,
        )
        try:
            await conn.connect()  # type: ignore[no-untyped-call]
        except BaseException:
            await conn.disconnect(nowait=True)
            raise
        # From here on subscribe() sends its own SUBSCRIBE; everything wanted before is
        # subscribed below, and the link is up once Redis confirmed all of it.
        self._conn = conn
        wanted = self._wanted()
        if not wanted:
            self._set_link(True)
            return conn
        self._resubscribing = set(wanted)
        for channel in wanted:
            self._requested.add(channel)
            self._pending.setdefault(channel, deque()).append([])
        for start in range(0, len(wanted), SUBSCRIBE_CHUNK):
            await conn.send_command("SUBSCRIBE", *wanted[start : start + SUBSCRIBE_CHUNK])
        return conn

    async def _read(self, conn: AbstractConnection) -> None:
        ping_sent = False
        while True:
            reply = await conn.read_response(timeout=self._health_interval)
            if reply is None:
                if ping_sent:
                    raise _LinkDead(f"no answer from Redis within {self._health_interval} s")
                await conn.send_command("PING")
                ping_sent = True
                continue
            ping_sent = False
            self._dispatch(reply)

    def _dispatch(self, reply: Any) -> None:
        if not isinstance(reply, list) or len(reply) < 2:
            return  # PONG outside subscribed mode
        kind, channel = reply[0], _text(reply[1])
        if kind == b"message" and len(reply) >= 3:
            self._on_message(channel, reply[2])
        elif kind == b"subscribe":
            self._on_subscribed(channel)

    def _on_message(self, channel: str, data: bytes) -> None:
        handlers = self._raw_handlers.get(channel)
        if handlers:
            for handler in tuple(handlers):
                _call(handler, data)
            return
        thread_id = self._channel_thread.get(channel)
        if thread_id is None:
            return  # unsubscribed while the message was on its way
        try:
            envelope = decode_envelope(data)
            if envelope.origin == self.origin:
                return  # delivered locally when it was published
            event = Event.from_dict(envelope.event)
        except (BadMessage, KeyError, TypeError, ValueError) as exc:
            m.messages_dropped.labels("undecodable").inc()
            log.warning("dropped an undecodable message on %s: %s", channel, exc)
            return
        if event.thread_id != thread_id:
            m.messages_dropped.labels("misrouted").inc()
            log.warning("dropped an event of thread %r sent on %s", event.thread_id, channel)
            return
        m.messages_received.inc()
        m.lag_seconds.observe(max(0.0, time.time() - envelope.sent_at))
        for listener in tuple(self._thread_listeners.get(thread_id, ())):
            _call(listener, event)

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        m.channels.dec(len(self._confirmed))
        self._confirmed.clear()
        self._requested.clear()
        self._resubscribing = None
        pending, self._pending = self._pending, {}
        for batches in pending.values():
            for batch in batches:
                for waiter in batch:
                    if not waiter.done():
                        waiter.set_result(None)  # the link signal covers what they miss
        if conn is not None:
            try:
                await conn.disconnect(nowait=True)
            except (RedisError, OSError) as exc:
                log.debug("disconnecting the subscriber connection: %s", exc)

    def _set_link(self, connected: bool) -> None:
        if connected == self._link.connected:
            return
        generation = self._link.generation + 1 if connected else self._link.generation
        self._link = LinkState(connected, generation)
        if connected:
            m.links_up.inc()
            self._link_up.set()
            if generation > 1:
                m.reconnects.inc()
        else:
            m.links_up.dec()
            m.disconnects.inc()
        for listener in tuple(self._link_listeners):
            _call(listener, self._link)


def split_namespace(url: str) -> tuple[str, str | None]:
    """Remove `namespace=` from a bus URL's query: (URL for redis-py, namespace or None).

    >>> split_namespace("redis://h:6379/0?namespace=blue")
    ('redis://h:6379/0', 'blue')
    """
    base, _, query_text = url.partition("?")
    query = parse_qsl(query_text, keep_blank_values=True)
    namespace = next((v for k, v in query if k == "namespace"), None)
    rest = urlencode([(k, v) for k, v in query if k != "namespace"])
    return (f"{base}?{rest}" if rest else base), namespace or None


def redact(url: str) -> str:
    """`url` without its password, for messages and logs.

    >>> redact("redis://user:secret@h:6379/0")
    'redis://user:***@h:6379/0'
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _call(callback: Callable[[Any], None], arg: Any) -> None:
    try:
        callback(arg)
    except Exception:
        m.listener_errors.inc()
        log.exception("bus listener %r raised", callback)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
