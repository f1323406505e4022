"""Parse-outcome counters and the once-per-ID legacy log (ids.md section 7).

The counters are plain `itertools.count` objects, advanced with `next()`: that is one C
call, atomic under the GIL, about 40 ns, against several hundred for
`prometheus_client.Counter.inc()` with its lock. A custom collector turns them into the
Prometheus counters `threadwire_id_parse_total{format}` and
`threadwire_id_parse_errors_total{code}` whenever the registry is scraped. See
docs/decisions/0002-id-parse-counters.md.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Iterable, Iterator
from typing import Final

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from threadwire.ids.errors import ERROR_CODES, ErrorCode

PARSE_TOTAL: Final = "threadwire_id_parse_total"
PARSE_ERRORS_TOTAL: Final = "threadwire_id_parse_errors_total"
LOGGER_NAME: Final = "threadwire.ids"

#: How many distinct legacy IDs the log remembers. Past that the oldest are forgotten, and
#: one of them seen again is logged again: memory stays bounded (a few MB at most) at the
#: price of an occasional repeat line while a large legacy population drains.
LEGACY_LOG_CAPACITY: Final = 65_536

logger = logging.getLogger(LOGGER_NAME)


def _value(counter: itertools.count[int]) -> int:
    # itertools.count has no public read; its repr is "count(N)".
    return int(repr(counter)[6:-1])


class ParseCounters:
    """Counts of parse outcomes by format and by error code, cheap to bump from any thread."""

    def __init__(self) -> None:
        self._formats: dict[str, itertools.count[int]] = {}
        self._codes = {code: itertools.count() for code in ERROR_CODES}
        self._lock = threading.Lock()
        #: The canonical counter, held directly for the parse hot path.
        self.canonical = self.for_format("canonical")

    def for_format(self, name: str) -> itertools.count[int]:
        """The counter of one format, made on first use."""
        counter = self._formats.get(name)
        if counter is None:
            with self._lock:
                counter = self._formats.setdefault(name, itertools.count())
        return counter

    def error(self, code: ErrorCode) -> None:
        """Count one rejection with `code`."""
        next(self._codes[code])

    def formats(self) -> dict[str, int]:
        """Parses so far by format name."""
        return {name: _value(counter) for name, counter in list(self._formats.items())}

    def errors(self) -> dict[str, int]:
        """Rejections so far by error code."""
        return {code: _value(counter) for code, counter in self._codes.items()}


class LegacyLog:
    """Logs each distinct legacy run ID once, at INFO, with its format.

    Remembers at most `capacity` IDs, forgetting the oldest first.
    """

    def __init__(self, capacity: int = LEGACY_LOG_CAPACITY) -> None:
        self.capacity = capacity
        self._seen: dict[str, None] = {}  # insertion-ordered: the first key is the oldest
        self._lock = threading.Lock()

    def __call__(self, run_id: str, format_name: str) -> None:
        # Always under the lock: legacy parses are the slow path anyway, and a lock-free
        # pre-check would need a second check inside it for the race it opens.
        with self._lock:
            if run_id in self._seen:
                return
            if len(self._seen) >= self.capacity:
                del self._seen[next(iter(self._seen))]
            self._seen[run_id] = None
        logger.info(
            "legacy run ID %s parsed as format %s",
            run_id,
            format_name,
            extra={"run_id": run_id, "id_format": format_name},
        )

    def forget(self) -> None:
        """Forget every ID seen, so each is logged again (for tests)."""
        with self._lock:
            self._seen.clear()


class IdParseCollector(Collector):
    """Exposes `ParseCounters` as two Prometheus counters."""

    def __init__(self, counters: ParseCounters) -> None:
        self.counters = counters

    def describe(self) -> Iterable[CounterMetricFamily]:
        return self._families({}, {})

    def collect(self) -> Iterator[CounterMetricFamily]:
        return iter(self._families(self.counters.formats(), self.counters.errors()))

    @staticmethod
    def _families(
        formats: dict[str, int], errors: dict[str, int]
    ) -> list[CounterMetricFamily]:
        parsed = CounterMetricFamily(
            PARSE_TOTAL, "Run IDs parsed, by the format that read them.", labels=["format"]
        )
        for name, value in sorted(formats.items()):
            parsed.add_metric([name], value)
        failed = CounterMetricFamily(
            PARSE_ERRORS_TOTAL, "Run IDs rejected, by error code.", labels=["code"]
        )
        for code, value in errors.items():
            failed.add_metric([code], value)
        return [parsed, failed]


def _install(collector: IdParseCollector) -> IdParseCollector:
    try:
        REGISTRY.register(collector)
    except ValueError:
        # This module was imported afresh (a test dropped it from sys.modules): the
        # collector of the earlier import reads counts nothing updates any more. Swap it.
        # prometheus_client has no public lookup, hence the guarded private attribute.
        held = getattr(REGISTRY, "_names_to_collectors", {})
        for old in {held[name] for name in (PARSE_TOTAL, PARSE_ERRORS_TOTAL) if name in held}:
            REGISTRY.unregister(old)
        REGISTRY.register(collector)
    return collector


# importlib.reload() runs this file again in the same namespace: keep the live state, so
# the counts go on and nothing is registered twice.
counters: ParseCounters = globals().get("counters") or ParseCounters()
legacy_log: LegacyLog = globals().get("legacy_log") or LegacyLog()
collector: IdParseCollector = globals().get("collector") or _install(IdParseCollector(counters))
