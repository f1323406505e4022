"""A cluster node in a process of its own, for tests that kill it with SIGKILL.

`python -m tests.cluster.node_process DATABASE_URL REDIS_URL NAMESPACE NODE_ID` joins the
cluster, starts a run of its own mid-way (recorded `running`, `run_queued` and
`agent_started` stored), prints `READY <run_id>` and then waits to be killed.
"""

from __future__ import annotations

import asyncio
import sys

from tests.cluster.helpers import start_run

from threadwire.bus.redis import RedisBus
from threadwire.cluster import ClusterNode, ClusterSettings
from threadwire.ids import new_thread_id
from threadwire.runtime.coordinator import Coordinator
from threadwire.store import create_store

SETTINGS = ClusterSettings(
    heartbeat_interval=0.1,
    heartbeat_ttl=1.0,
    detect_interval=0.1,
    grace=0.3,
    sweep_interval=0.2,
)


async def main(database_url: str, redis_url: str, namespace: str, node_id: str) -> None:
    store = create_store(database_url)
    await store.open()
    bus = RedisBus(redis_url, namespace=namespace, origin=node_id)
    await bus.open()
    coordinator = Coordinator(store, bus)

    async def cancel_run(run_id: str) -> dict[str, object]:
        return {"run_id": run_id}

    node = ClusterNode(bus, node_id, store, coordinator, cancel_run=cancel_run, settings=SETTINGS)
    await node.start()
    thread_id = new_thread_id()
    await store.create_thread(thread_id, "user_1")
    run = await start_run(store, coordinator, node_id, thread_id=thread_id)
    await bus.flush()
    print("READY", run.run_id, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
