"""The server target against real ClickHouse servers.

- Debian's `clickhouse-server` (18.16, the only server package reachable here) is
  started on free loopback ports when installed: clickhouse-connect cannot open a
  session with it, and the target says so precisely, while the sink only buffers and
  drops (counted).
- Any other server: set THREADWIRE_TEST_CLICKHOUSE_URL=clickhouse://host:8123/db to
  run the live-sink report check against it (skipped otherwise: no such server can be
  installed on these machines).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.traces.test_report import Store, assert_matches
from tests.traces.test_sink import dropped, run_events

from threadwire.traces.report import build_report
from threadwire.traces.server import ClickHouseTarget
from threadwire.traces.sink import TraceSink
from threadwire.traces.target import TraceTargetError

DEBIAN_SERVER = "/usr/sbin/clickhouse-server"

CONFIG = """<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><log>{dir}/server.log</log>
        <errorlog>{dir}/error.log</errorlog><console>0</console></logger>
    <http_port>{http}</http_port>
    <tcp_port>{tcp}</tcp_port>
    <listen_host>127.0.0.1</listen_host>
    <max_concurrent_queries>20</max_concurrent_queries>
    <mark_cache_size>67108864</mark_cache_size>
    <path>{dir}/data/</path>
    <tmp_path>{dir}/tmp/</tmp_path>
    <user_files_path>{dir}/user_files/</user_files_path>
    <format_schema_path>{dir}/format_schemas/</format_schema_path>
    <users_config>/etc/clickhouse-server/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
</yandex>
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def debian_clickhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ClickHouse server from Debian's package on loopback; its HTTP base URL."""
    if not (Path(DEBIAN_SERVER).exists() and Path("/etc/clickhouse-server/users.xml").exists()):
        pytest.skip("Debian's clickhouse-server is not installed (apt-get install it to test)")
    home = tmp_path_factory.mktemp("clickhouse")
    http, tcp = _free_port(), _free_port()
    (home / "config.xml").write_text(CONFIG.format(dir=home, http=http, tcp=tcp))
    log = (home / "stdout.log").open("w")
    server = subprocess.Popen(
        [DEBIAN_SERVER, f"--config-file={home / 'config.xml'}"],
        cwd=home,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{http}"
    try:
        deadline = time.monotonic() + 60
        while True:  # readiness, bounded: the server answers /ping once it listens
            try:
                if httpx.get(f"{base}/ping", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"clickhouse-server did not start: {(home / 'error.log').read_text()}")
            time.sleep(0.05)
        yield base
    finally:
        server.kill()  # a throwaway server: its graceful stop waits seconds for nothing
        server.wait()
        log.close()
        shutil.rmtree(home / "data", ignore_errors=True)


def test_the_debian_server_is_clickhouse_18_16(debian_clickhouse: str) -> None:
    version = httpx.get(debian_clickhouse, params={"query": "SELECT version()"}).text.strip()
    assert version.startswith("18.16."), version


async def test_clickhouse_connect_cannot_open_a_session_with_clickhouse_18_16(
    debian_clickhouse: str,
) -> None:
    import clickhouse_connect

    url = debian_clickhouse.replace("http://", "clickhouse://") + "/threadwire"
    target = ClickHouseTarget(url)
    with pytest.raises(TraceTargetError) as info:
        await target.open()
    message = str(info.value)
    assert f"clickhouse-connect {clickhouse_connect.__version__} cannot open a session" in message
    assert "with ClickHouse 18.16." in message
    # its handshake reads system.settings.readonly, a column 18.16 does not have
    assert "readonly" in message


async def test_a_sink_on_an_unusable_server_buffers_drops_and_never_raises(
    debian_clickhouse: str,
) -> None:
    url = debian_clickhouse.replace("http://", "clickhouse://") + "/threadwire"
    sink = TraceSink(ClickHouseTarget(url), max_buffer=10, flush_interval=0.01,
                     retry_initial=0.01, retry_max=0.05)
    before = dropped("buffer_full") + dropped("shutdown")
    await sink.start()
    sink.submit(run_events(1, 30))
    assert sink.dropped == 20
    await sink.close(grace=0.2)
    assert sink.written == 0
    assert dropped("buffer_full") + dropped("shutdown") - before == 30


SERVER_URL = os.environ.get("THREADWIRE_TEST_CLICKHOUSE_URL", "")


@pytest.mark.skipif(
    not SERVER_URL, reason="no modern ClickHouse server here: set THREADWIRE_TEST_CLICKHOUSE_URL"
)
async def test_live_sink_report_matches_the_store_on_a_server(workload_store: Store) -> None:
    _, db_path, work = workload_store
    url = SERVER_URL.rstrip("/").rsplit("/", 1)[0] + f"/tw_test_{secrets.token_hex(6)}"
    target = ClickHouseTarget(url)
    sink = TraceSink(target, batch_size=1000, flush_interval=0.05)
    await sink.start()
    try:
        sink.submit(work.events)
        await sink.flush()
        assert_matches(await build_report(target, now=work.now), db_path, since=None)
        await target.query(f"DROP DATABASE `{target.database}`")
    finally:
        await sink.close()
