"""End-to-end fan-out: threadwire beside python-socketio, Socket.IO on Node and a bare relay.

    .venv/bin/python benchmarks/bench_fanout.py [--quick] [--connections 500,2000]
        [--profile-with PATH/TO/py-spy]

About 5 minutes by default (500 and 2,000 connections, 3 s warm-up, 8 s window per
phase); `--quick` takes about a minute (500 connections, 1 s warm-up, 2.5 s window).

`--servers uvicorn-floor` adds a diagnosis beside them: threadwire's own server stack
(uvicorn, httptools, uvloop and its frame-once WebSocket protocol) under a raw ASGI
app that relays and does nothing else (benchmarks/fanout/uvicorn_floor.py). What
threadwire costs beyond the floor is threadwire's own work.

The same workload runs against every server, in the same run: `connections`
WebSocket subscribers in rooms of 10 (threadwire: one thread per room, owned by its
own user, each subscriber a `/v1/ws` connection of that user), events of 300 bytes,
published two ways:

- `http`: one event per HTTP POST from the load generator (threadwire: `POST
  /v1/events` with a service token; peers: `POST /publish/<room>`, which broadcasts);
- `inproc`: from inside the server (threadwire: one run per thread of the agent
  `benchmarks.fanout.agent:fanout`, started with `--agent`, emitting with
  `ctx.emit_nowait`, as a token-streaming agent does; peers: one loop per room that
  broadcasts).

threadwire runs as `threadwire serve` does by default: the embedded SQLite store, so
every event is persisted before it is delivered. The peers store nothing.

Each room is a closed loop: event k is published once event k - window (default 8)
has reached all ten subscribers, so every server runs at the rate it can sustain and
nothing piles up in unbounded buffers. Latency is receive time minus the timestamp
the publisher put in the payload. Server CPU is user + system time of the server
process (all threads) from /proc/<pid>/stat over the measured window.

Each server is a process of its own, pinned to the first CPU this script may use; the
load generator (benchmarks/fanout/loadgen.py, one Python process) is pinned to the
second. Prints a table per scenario with ratios to the bare relay (the broadcast
limit) and to the best peer framework, then the issue's bars: with HTTP publish at
least the best peer's deliveries/s; from in-process agents at least 0.8x the bare
limit. Exit status 1 if a bar is missed.

The machine is reported with the figures: "server waited" is the share of the window
the server's threads were ready to run but waited for their CPU (other processes on
a shared machine), and "deliveries per CPU-s" (deliveries over server CPU seconds) is
the rate one whole core would sustain, the comparison that such contention disturbs
least. `--profile-with` records threadwire's windows with py-spy (install it in a
scratch venv: `pip install py-spy`) and prints where its time goes, by area.

Needs node 20 and `npm ci` in benchmarks/node (run for you when node_modules is missing);
without node the Socket.IO-on-Node peer is left out and the script says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.fanout.profile import report  # noqa: E402
from benchmarks.fanout.workload import (  # noqa: E402
    BARE,
    DEFAULT_SERVERS,
    FLOOR,
    PEERS,
    PHASES,
    SERVERS,
    PhaseResult,
    Session,
    pad_length,
)
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

NODE_DIR: Final = ROOT / "benchmarks" / "node"
HOST: Final = "127.0.0.1"
READY_TIMEOUT: Final = 60.0
INPROC_BAR: Final = 0.8
PHASE_TITLES: Final = {"http": "HTTP POST publish", "inproc": "in-process publish"}


@dataclass
class Server:
    """A server process under test and the ports it serves."""

    name: str
    process: subprocess.Popen[bytes]
    ws_port: int
    http_port: int
    log: Path


@dataclass
class Run:
    """Everything measured, by (connections, phase) then server."""

    results: dict[tuple[int, str], dict[str, PhaseResult]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def add(self, result: PhaseResult) -> None:
        """Keep `result`, or the earlier round's if that one delivered more per second."""
        rows = self.results.setdefault((result.connections, result.phase), {})
        kept = rows.get(result.server)
        if kept is None or result.rate > kept.rate:
            rows[result.server] = result


class Processes:
    """Every child started, so that all of them end with the script, Ctrl-C included."""

    def __init__(self) -> None:
        self.children: list[subprocess.Popen[bytes]] = []

    def start(
        self,
        argv: list[str],
        *,
        cpus: set[int] | None,
        cwd: Path,
        env: dict[str, str] | None = None,
        stdout: int | None = None,
        log: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start `argv` in a session of its own, pinned to `cpus` before it runs."""
        sink = open(log, "wb") if log is not None else None

        def pin() -> None:
            if cpus:
                os.sched_setaffinity(0, cpus)

        try:
            child = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stdout if stdout is not None else sink,
                stderr=sink,
                preexec_fn=pin,
                start_new_session=True,
            )
        finally:
            if sink is not None:
                sink.close()
        self.children.append(child)
        return child

    def stop(self, child: subprocess.Popen[bytes], grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds, to the child's process group."""
        if child.poll() is None:
            _signal_group(child, signal.SIGTERM)
            try:
                child.wait(grace)
            except subprocess.TimeoutExpired:
                _signal_group(child, signal.SIGKILL)
                child.wait()
        if child in self.children:
            self.children.remove(child)

    def stop_all(self) -> None:
        """End every child still running."""
        for child in list(self.children):
            self.stop(child, grace=2.0)


def _signal_group(child: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(child.pid, sig)
    except ProcessLookupError:
        pass


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port of 127.0.0.1 free right now."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def wait_listening(server: Server, ports: list[int]) -> None:
    """Return once every port accepts connections; raise if the server died or hung."""
    deadline = time.monotonic() + READY_TIMEOUT
    for port in ports:
        while True:
            if server.process.poll() is not None:
                raise RuntimeError(f"{server.name} exited early; see {server.log}")
            try:
                with socket.create_connection((HOST, port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    why = f"{server.name} is not listening; see {server.log}"
                    raise RuntimeError(why) from None
                time.sleep(0.1)


def venv_bin(name: str) -> str:
    """A console script installed beside this interpreter."""
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        raise RuntimeError(f"{name!r} is not installed beside {sys.executable}")
    return found


def node_ready() -> str | None:
    """None when the Node peer can run (installing its packages if needed), else why not."""
    node = shutil.which("node")
    if node is None:
        return "node is not installed"
    if not (NODE_DIR / "node_modules" / "socket.io").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            return "npm is not installed (needed once: npm ci in benchmarks/node)"
        print("installing the Node peer's packages (npm ci in benchmarks/node)", file=sys.stderr)
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, capture_output=True, text=True
        )
        if done.returncode != 0:
            return f"npm ci failed: {done.stderr.strip()[-300:]}"
    return None


class Bench:
    """Starts each server in turn and has the load generator measure it."""

    def __init__(self, args: argparse.Namespace, processes: Processes, scratch: Path) -> None:
        self.args = args
        self.processes = processes
        self.scratch = scratch
        self.secret = os.urandom(24).hex()
        self.pad = pad_length()
        self.profiles: list[Path] = []
        self.profiles_dir: Path = args.profile_dir
        cpus = sorted(os.sched_getaffinity(0))
        self.server_cpus = {cpus[0]} if len(cpus) >= 2 else None
        self.client_cpus = {cpus[1]} if len(cpus) >= 2 else None

    def start_server(self, name: str, connections: int) -> Server:
        """Start `name` and wait until it listens."""
        # The servers run with their defaults: none of this shell's THREADWIRE_* settings.
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("THREADWIRE_")}
        base_env["PYTHONPATH"] = str(ROOT)
        port = free_port()
        http_port = port
        log = self.scratch / f"{name}-{connections}.log"
        if name == "threadwire":
            home = Path(tempfile.mkdtemp(prefix=f"threadwire-{connections}-", dir=self.scratch))
            rooms = connections // 10
            argv = [
                venv_bin("threadwire"),
                "serve",
                "--host",
                HOST,
                "--port",
                str(port),
                "--agent",
                "benchmarks.fanout.agent:fanout",
                # One run per room must be able to run at once (the default is 64).
                "--max-concurrent-runs",
                str(max(64, rooms)),
            ]
            env = {**base_env, "THREADWIRE_JWT_SECRET": self.secret}
            cwd = home  # the default store, ./threadwire.db, lands here
        elif name == "socketio-python":
            argv = [sys.executable, "-m", "benchmarks.fanout.sio_server", str(port)]
            env, cwd = base_env, ROOT
        elif name == FLOOR:
            argv = [sys.executable, "-m", "benchmarks.fanout.uvicorn_floor", str(port)]
            env, cwd = base_env, ROOT
        elif name == "socketio-node":
            argv, env, cwd = ["node", str(NODE_DIR / "server.js"), str(port)], base_env, ROOT
        else:
            http_port = free_port()
            module = "benchmarks.fanout.bare_server"
            argv = [sys.executable, "-m", module, str(port), str(http_port)]
            env, cwd = base_env, ROOT
        process = self.processes.start(argv, cpus=self.server_cpus, cwd=cwd, env=env, log=log)
        server = Server(name, process, port, http_port, log)
        wait_listening(server, sorted({port, http_port}))
        return server

    def measure(self, name: str, connections: int) -> list[PhaseResult]:
        """One server, one connection count: every phase, in one server process."""
        server = self.start_server(name, connections)
        print(f"  server pid {server.process.pid}, port {server.ws_port}", file=sys.stderr)
        try:
            session = Session(
                server=name,
                connections=connections,
                host=HOST,
                ws_port=server.ws_port,
                http_port=server.http_port,
                credit_port=free_port(socket.SOCK_DGRAM),
                server_pid=server.process.pid,
                pad=self.pad,
                window=self.args.window,
                warmup=self.args.warmup,
                measure=self.args.measure,
                phases=list(self.args.phases),
                secret=self.secret,
            )
            loadgen = self.processes.start(
                [sys.executable, "-m", "benchmarks.fanout.loadgen", session.to_json()],
                cpus=self.client_cpus,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=subprocess.PIPE,
                log=self.scratch / f"loadgen-{name}-{connections}.log",
            )
            budget = 150 + len(session.phases) * (session.warmup + session.measure + 20)
            watchdog = threading.Timer(budget, lambda: _signal_group(loadgen, signal.SIGKILL))
            watchdog.start()
            try:
                results = self.follow(loadgen, server, session)
                loadgen.wait()
            finally:
                watchdog.cancel()
                self.processes.stop(loadgen)
            if loadgen.returncode != 0 or len(results) != len(session.phases):
                log = self.scratch / f"loadgen-{name}-{connections}.log"
                tail = log.read_text(errors="replace")[-1500:]
                raise RuntimeError(f"the load generator failed against {name}:\n{tail}")
            return results
        finally:
            self.processes.stop(server.process)

    def follow(
        self, loadgen: subprocess.Popen[bytes], server: Server, session: Session
    ) -> list[PhaseResult]:
        """Read the load generator's lines: window marks (profile then) and results."""
        assert loadgen.stdout is not None
        results = []
        spy: subprocess.Popen[bytes] | None = None
        recording = Path()
        for raw in loadgen.stdout:
            line = json.loads(raw)
            if "mark" not in line:
                results.append(PhaseResult.from_json(raw.decode()))
            elif (
                line["mark"] == "measuring"
                and self.args.profile_with
                and server.name == "threadwire"
            ):
                recording = (
                    self.scratch
                    / f"profile-{server.name}-{session.connections}-{line['phase']}.txt"
                )
                spy = self.processes.start(
                    [
                        str(self.args.profile_with),
                        "record",
                        "--pid",
                        str(server.process.pid),
                        "--duration",
                        str(max(1, int(session.measure))),
                        "--rate",
                        "100",
                        "--nonblocking",
                        "--threads",
                        "--format",
                        "raw",
                        "--output",
                        str(recording),
                    ],
                    cpus=self.client_cpus,
                    cwd=ROOT,
                    log=recording.with_suffix(".log"),
                )
            elif line["mark"] == "measured" and spy is not None:
                spy.wait(timeout=session.measure + 30)
                self.processes.stop(spy)
                spy = None
                kept = self.profiles_dir / recording.name
                shutil.copy(recording, kept)
                self.profiles.append(kept)
        return results


# -- reporting ------------------------------------------------------------------------------


def best_peer(rows: dict[str, PhaseResult]) -> PhaseResult | None:
    """The peer framework with the most deliveries/s."""
    peers = [rows[name] for name in PEERS if name in rows]
    return max(peers, key=lambda r: r.rate) if peers else None


def ratio(value: float, base: PhaseResult | None) -> str:
    if base is None or base.rate <= 0:
        return "-"
    return f"{value / base.rate:.2f}x"


def flags(result: PhaseResult) -> str:
    notes = []
    if result.lost or result.out_of_order or result.stalls:
        notes.append(f"lost {result.lost}, misordered {result.out_of_order}")
    if result.client_util >= 0.9:
        notes.append("client CPU >= 90%")
    if result.errors:
        notes.append("; ".join(result.errors)[:160])
    return "; ".join(notes)


HEADERS: Final = (
    "server",
    "deliveries/s",
    "vs bare",
    "vs best peer",
    "p50 ms",
    "p99 ms",
    "server CPU us/delivery",
    "deliveries per CPU-s",
    "server CPU",
    "server waited",
    "client CPU",
    "notes",
)


def table_rows(rows: dict[str, PhaseResult]) -> list[list[str]]:
    bare, peer = rows.get(BARE), best_peer(rows)
    lines = []
    for name in SERVERS:
        r = rows.get(name)
        if r is None:
            continue
        lines.append(
            [
                name,
                f"{r.rate:,.0f}",
                ratio(r.rate, bare),
                ratio(r.rate, peer),
                f"{r.p50_ms:,.1f}",
                f"{r.p99_ms:,.1f}",
                f"{r.cpu_us_per_delivery:,.1f}",
                f"{r.per_cpu_second:,.0f}",
                f"{r.server_util:.0%}",
                f"{r.server_wait:.0%}",
                f"{r.client_util:.0%}",
                flags(r),
            ]
        )
    return lines


def print_tables(run: Run) -> None:
    console = Console(width=200)
    for (connections, phase), rows in sorted(run.results.items()):
        table = Table(title=f"{connections:,} connections, {PHASE_TITLES[phase]}")
        for i, header in enumerate(HEADERS):
            table.add_column(header, justify="left" if i in (0, len(HEADERS) - 1) else "right")
        for line in table_rows(rows):
            table.add_row(*line)
        console.print(table)


def markdown(run: Run) -> str:
    """One Markdown table of every scenario (what docs/benchmarks.md shows)."""
    head = ["connections", "publish", *HEADERS]
    out = ["| " + " | ".join(head) + " |", "| " + " | ".join(["---"] * len(head)) + " |"]
    for (connections, phase), rows in sorted(run.results.items()):
        for line in table_rows(rows):
            out.append("| " + " | ".join([f"{connections:,}", phase, *line]) + " |")
    return "\n".join(out)


def bars(run: Run) -> list[tuple[str, bool | None]]:
    """The issue's bars: (statement with figures, met; None when it cannot be judged)."""
    verdicts: list[tuple[str, bool | None]] = []
    for (connections, phase), rows in sorted(run.results.items()):
        tw = rows.get("threadwire")
        if tw is None:
            continue
        if phase == "http":
            peer = best_peer(rows)
            if peer is None:
                verdicts.append((f"{connections:,} conns, HTTP: no peer measured", None))
                continue
            ok = tw.rate >= peer.rate
            verdicts.append(
                (
                    f"{connections:,} conns, HTTP publish >= best peer ({peer.server}, "
                    f"{peer.rate:,.0f}/s): {tw.rate:,.0f}/s = {tw.rate / peer.rate:.2f}x",
                    ok,
                )
            )
        else:
            bare = rows.get(BARE)
            if bare is None or bare.rate <= 0:
                verdicts.append((f"{connections:,} conns, in-process: no bare limit", None))
                continue
            ok = tw.rate >= INPROC_BAR * bare.rate
            verdicts.append(
                (
                    f"{connections:,} conns, in-process >= {INPROC_BAR}x bare "
                    f"({bare.rate:,.0f}/s): {tw.rate:,.0f}/s = {tw.rate / bare.rate:.2f}x",
                    ok,
                )
            )
    return verdicts


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    node = shutil.which("node")
    node_version = (
        subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
        if node
        else "absent"
    )
    load = os.getloadavg()[0]
    return (
        f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, "
        f"node {node_version}, load average {load:.1f} at start"
    )


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="500 connections, shorter windows (about a minute)"
    )
    parser.add_argument(
        "--connections", default=None, help="comma-separated [500,2000; quick: 500]"
    )
    parser.add_argument(
        "--servers",
        default=",".join(DEFAULT_SERVERS),
        help=f"comma-separated, of {', '.join(SERVERS)}",
    )
    parser.add_argument("--phases", default=",".join(PHASES), help="http,inproc or one of them")
    parser.add_argument("--window", type=int, default=8, help="events in flight per room [8]")
    parser.add_argument("--warmup", type=float, default=None, help="seconds [3; quick 1]")
    parser.add_argument("--measure", type=float, default=None, help="seconds [8; quick 2.5]")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure everything N times, servers interleaved, keep each one's best [1]",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument(
        "--profile-with",
        type=Path,
        default=None,
        metavar="PY_SPY",
        help="record threadwire's windows with this py-spy binary and summarise them",
    )
    parser.add_argument(
        "--profile-dir", type=Path, default=Path("."), help="where recordings are kept [.]"
    )
    args = parser.parse_args(argv)
    if args.connections is None:
        args.connections = "500" if args.quick else "500,2000"
    args.connections = [int(c) for c in args.connections.split(",") if c]
    args.servers = [s for s in args.servers.split(",") if s]
    args.phases = [p for p in args.phases.split(",") if p]
    unknown = (set(args.servers) - set(SERVERS)) | (set(args.phases) - set(PHASES))
    if unknown:
        parser.error(f"unknown servers or phases: {sorted(unknown)}")
    if any(c < 10 or c % 10 for c in args.connections):
        parser.error("connections must be positive multiples of 10 (rooms of 10)")
    if args.warmup is None:
        args.warmup = 1.0 if args.quick else 3.0
    if args.measure is None:
        args.measure = 2.5 if args.quick else 8.0
    return args


def raise_fd_limit() -> None:
    """2,000 connections on each side need more descriptors than the usual 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    if wanted < 4 * 2000 + 256:
        print(f"warning: only {wanted} file descriptors allowed", file=sys.stderr)


@contextmanager
def terminated_on_signals() -> Iterator[None]:
    """SIGTERM ends the script like Ctrl-C does, so cleanup runs either way."""

    def handler(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous: Callable[..., object] | int | None = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    run = Run()
    servers = list(args.servers)
    if "socketio-node" in servers:
        why = node_ready()
        if why is not None:
            servers.remove("socketio-node")
            run.skipped["socketio-node"] = why
            print(f"leaving out socketio-node: {why}", file=sys.stderr)
    print(f"Machine: {machine()}")
    processes = Processes()
    scratch = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    started = time.monotonic()
    try:
        with terminated_on_signals():
            bench = Bench(args, processes, scratch)
            print(
                f"servers pinned to CPU {bench.server_cpus}, load generator to CPU "
                f"{bench.client_cpus}; warm-up {args.warmup:g} s, window {args.measure:g} s, "
                f"{args.window} events in flight per room; logs in {scratch}",
                file=sys.stderr,
            )
            for round_ in range(1, args.rounds + 1):
                for connections in args.connections:
                    for name in servers:
                        print(
                            f"- round {round_}: {name}, {connections} connections",
                            file=sys.stderr,
                            flush=True,
                        )
                        for result in bench.measure(name, connections):
                            run.add(result)
    except KeyboardInterrupt:
        print("interrupted: stopping every process", file=sys.stderr)
        processes.stop_all()
        return 130
    finally:
        processes.stop_all()
    print_tables(run)
    print()
    print(markdown(run))
    print()
    verdicts = bars(run)
    for statement, ok in verdicts:
        print(f"- {statement}: {'PASS' if ok else 'FAIL' if ok is False else 'n/a'}")
    for recording in bench.profiles:
        print()
        print(report(recording))
    for name, why in run.skipped.items():
        print(f"- {name} left out: {why}")
    print(f"(ran {time.monotonic() - started:.0f} s)")
    if args.json is not None:
        payload = {
            f"{c}/{p}": {s: json.loads(r.to_json()) for s, r in rows.items()}
            for (c, p), rows in run.results.items()
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    shutil.rmtree(scratch, ignore_errors=True)
    return 1 if any(ok is False for _, ok in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
