"""Local nodes (`threadwire serve` subprocesses) and a Redis for them, which the verifier
starts, kills and restarts itself. It never touches a server it did not start.

Each node gets its own loopback port, node ID and log file, and shares the store and
the bus with the others; `--id-formats` enables every registered run-ID format so
that legacy traffic of every form can be sent.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Final

import httpx

from threadwire.ids import registry as id_registry

READY_TIMEOUT: Final = 30.0


class SpawnError(RuntimeError):
    """A process the verifier started did not come up; the message says where its log is."""


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Process:
    """A child process with a log file, killed or stopped by its own PID only."""

    name: str
    log: Path

    def __init__(self) -> None:
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def alive(self) -> bool:
        """Whether the child is running."""
        return self.process is not None and self.process.returncode is None

    async def _launch(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        with self.log.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                *argv, stdout=out, stderr=asyncio.subprocess.STDOUT, env=env, cwd=cwd
            )
        self.starts += 1

    async def kill(self) -> None:
        """SIGKILL, as a crash would; waits for the exit."""
        if self.alive:
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()

    async def stop(self, grace: float = 15.0) -> int | None:
        """SIGTERM and wait (SIGKILL after `grace` seconds); the exit status."""
        if not self.alive:
            return self.process.returncode if self.process else None
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(grace):
                return await self.process.wait()
        except TimeoutError:
            await self.kill()
            return self.process.returncode

    def tail(self, lines: int = 15) -> str:
        """The end of the log, for error messages."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class NodeProcess(_Process):
    """One `threadwire serve` on a fixed loopback port (kept across restarts)."""

    def __init__(
        self,
        index: int,
        workdir: Path,
        *,
        secret: str,
        database_url: str,
        bus_url: str | None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        self.index = index
        self.name = f"node-{index}"
        self.workdir = workdir
        self.port = free_port()
        self.secret = secret
        self.database_url = database_url
        self.bus_url = bus_url
        self.extra_args = extra_args
        self.log = workdir / f"{self.name}.log"

    @property
    def url(self) -> str:
        """The node's base URL."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start (or restart) the node and wait until /readyz answers 200."""
        argv = [
            sys.executable, "-m", "threadwire", "serve",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--database-url", self.database_url,
            "--id-formats", ",".join(id_registry.names()),
            "--shutdown-grace", "2",
            *self.extra_args,
        ]  # fmt: skip
        if self.bus_url:
            argv += ["--bus-url", self.bus_url]
        env = dict(os.environ)
        env.update(
            THREADWIRE_JWT_SECRET=self.secret,
            THREADWIRE_NODE_ID=self.name,
            THREADWIRE_LOG_LEVEL="WARNING",
        )
        await self._launch(argv, env, self.workdir)
        await self._wait_ready()

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        async with httpx.AsyncClient(timeout=2.0) as http:
            while time.monotonic() < deadline:
                if not self.alive:
                    raise SpawnError(f"{self.name} exited; log {self.log}:\n{self.tail()}")
                try:
                    if (await http.get(self.url + "/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise SpawnError(f"{self.name} not ready in {READY_TIMEOUT:.0f} s; log {self.log}")

    async def ready(self) -> bool:
        """Whether /readyz answers 200 now (store and bus reachable)."""
        try:
            async with httpx.AsyncClient(timeout=1.0) as http:
                return (await http.get(self.url + "/readyz")).status_code == 200
        except httpx.TransportError:
            return False


class RedisProcess(_Process):
    """A throwaway redis-server on a free loopback port; nothing persisted."""

    def __init__(self, workdir: Path) -> None:
        super().__init__()
        self.name = "redis"
        self.workdir = workdir
        self.port = free_port()
        self.log = workdir / "redis.log"
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise SpawnError("--spawn-redis needs redis-server on PATH")
        self.binary = binary

    @property
    def url(self) -> str:
        """The redis:// URL (the same across restarts)."""
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        """Start and wait until it answers PING."""
        argv = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
        ]  # fmt: skip
        await self._launch(argv, dict(os.environ), self.workdir)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if not self.alive:
                raise SpawnError(f"redis-server exited; log {self.log}:\n{self.tail()}")
            if await self.answers():
                return
            await asyncio.sleep(0.02)
        raise SpawnError(f"redis-server not answering in {READY_TIMEOUT:.0f} s")

    async def answers(self) -> bool:
        """Whether it answers PING now."""
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        try:
            writer.write(b"PING\r\n")
            await writer.drain()
            return (await asyncio.wait_for(reader.read(16), 1.0)).startswith(b"+PONG")
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()


class LocalCluster:
    """N nodes (and maybe a Redis) the verifier owns; stopped in reverse order."""

    def __init__(
        self,
        count: int,
        workdir: Path,
        *,
        secret: str,
        database_url: str | None,
        bus_url: str | None,
        spawn_redis: bool,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.workdir = workdir
        self.redis = RedisProcess(workdir) if spawn_redis else None
        bus = self.redis.url if self.redis else bus_url
        database = database_url or f"sqlite+aiosqlite:///{workdir / 'threadwire.db'}"
        self.nodes = [
            NodeProcess(
                i, workdir, secret=secret, database_url=database, bus_url=bus,
                extra_args=extra_args,
            )
            for i in range(count)
        ]  # fmt: skip

    @property
    def urls(self) -> list[str]:
        """Base URLs of the nodes."""
        return [node.url for node in self.nodes]

    async def start(self) -> None:
        """Redis first, then the first node (it installs the schema), then the rest."""
        if self.redis is not None:
            await self.redis.start()
        await self.nodes[0].start()
        await asyncio.gather(*(node.start() for node in self.nodes[1:]))

    async def stop(self) -> dict[str, int | None]:
        """SIGTERM every node, then Redis; each one's exit status."""
        statuses = dict(
            zip(
                (n.name for n in self.nodes),
                await asyncio.gather(*(n.stop() for n in self.nodes)),
                strict=True,
            )
        )
        if self.redis is not None:
            statuses["redis"] = await self.redis.stop()
        return statuses
