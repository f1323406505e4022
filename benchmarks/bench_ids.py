"""ns/op of threadwire.ids beside uuid, python-ulid and typeid-python, in one run.

    .venv/bin/python benchmarks/bench_ids.py [--quick]

Prints a Markdown table: each operation's best-of-N time per call and its ratio to
`uuid.uuid4().hex`, then the two bars the ID module is held to (issue 2): generating
a run ID at most 2x `uuid.uuid4().hex`, parsing a canonical run ID at most
`uuid.UUID(str)`. Exit status 1 if a bar is missed. Every operation runs the same
way: timeit, a fixed input, `number` calls per round, rounds interleaved, best kept.
The ID module keeps no parse cache, so a fixed input measures the full parse.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import timeit
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import ulid
from typeid import TypeID

from threadwire import ids

THREAD = ids.new_thread_id()
CANONICAL = ids.new_run_id(THREAD)
LEGACY = "run_user_42_7f3a9c01"
UUID_TEXT = str(uuid.uuid4())
ULID_TEXT = str(ulid.ULID())
TYPEID_TEXT = str(TypeID(prefix="evt"))


@dataclass(frozen=True)
class Case:
    group: str
    name: str
    call: Callable[[], object]


def _cases() -> list[Case]:
    return [
        Case("baseline", "uuid.uuid4().hex", lambda: uuid.uuid4().hex),
        Case("generate", "str(uuid.uuid4())", lambda: str(uuid.uuid4())),
        Case("generate", "ids.new_run_id(thread)", lambda: ids.new_run_id(THREAD)),
        Case("generate", "ids.new_thread_id()", ids.new_thread_id),
        Case("generate", "ids.new_event_id()", ids.new_event_id),
        Case("generate", "str(ulid.ULID())  (python-ulid)", lambda: str(ulid.ULID())),
        Case("generate", 'str(TypeID("evt"))  (typeid-python)', lambda: str(TypeID(prefix="evt"))),
        Case("parse", "uuid.UUID(s)", lambda: uuid.UUID(UUID_TEXT)),
        Case("parse", "ids.parse_run_id(canonical)", lambda: ids.parse_run_id(CANONICAL)),
        Case("parse", "ids.extract_thread_id(canonical)", lambda: ids.extract_thread_id(CANONICAL)),
        Case("parse", "ids.parse_run_id(legacy)", lambda: ids.parse_run_id(LEGACY)),
        Case("parse", "ids.extract_thread_id(legacy)", lambda: ids.extract_thread_id(LEGACY)),
        Case("parse", "ULID.from_str(s)  (python-ulid)", lambda: ulid.ULID.from_str(ULID_TEXT)),
        Case(
            "parse",
            "TypeID.from_string(s)  (typeid-python)",
            lambda: TypeID.from_string(TYPEID_TEXT),
        ),
    ]


def measure(cases: list[Case], number: int, repeat: int) -> dict[str, float]:
    """Best time per call of each case, in nanoseconds, over `repeat` rounds.

    The rounds are interleaved (every case once per round), so a burst of load on a
    shared machine hits all cases alike instead of the few that ran during it.
    """
    timers = {case.name: timeit.Timer(case.call) for case in cases}
    best = dict.fromkeys(timers, float("inf"))
    for _ in range(repeat):
        for name, timer in timers.items():
            best[name] = min(best[name], timer.timeit(number) / number * 1e9)
    return best


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls, for a smoke test")
    args = parser.parse_args(argv)
    number, repeat = (2_000, 3) if args.quick else (100_000, 7)

    print(
        f"machine: {os.cpu_count()} CPUs, {cpu_model()}; Python {platform.python_version()} "
        f"({platform.python_implementation()}); best of {repeat} x {number:,} calls"
    )
    print()
    results = measure(_cases(), number, repeat)
    base = results["uuid.uuid4().hex"]
    print("| group | operation | ns/op | vs uuid4().hex |")
    print("| --- | --- | ---: | ---: |")
    for case in _cases():
        ns = results[case.name]
        print(f"| {case.group} | `{case.name}` | {ns:,.0f} | {ns / base:.2f}x |")
    print()
    generate = results["ids.new_run_id(thread)"] / base
    parse = results["ids.parse_run_id(canonical)"] / results["uuid.UUID(s)"]
    bars = [
        ("new_run_id <= 2x uuid.uuid4().hex", generate, 2.0),
        ("parse_run_id(canonical) <= 1x uuid.UUID(s)", parse, 1.0),
    ]
    missed = False
    for label, ratio, limit in bars:
        ok = ratio <= limit
        missed = missed or not ok
        print(f"- {label}: {ratio:.2f}x {'PASS' if ok else 'FAIL'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
