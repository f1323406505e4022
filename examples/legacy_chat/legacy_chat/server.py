"""The chat service: a WebSocket server (the `websockets` library).

    python -m legacy_chat.server --port 8765

Protocol, one JSON object per message:
  -> {"type": "subscribe", "thread_id": T}          <- {"type": "subscribed", "thread_id": T}
  -> {"type": "start", "thread_id": T, "agent": "chat"|"tools", "events": N, "request": R}
  <- the run's events, routed to the subscribers of the run's thread
  <- {"type": "done", "request": R, "run_id": ..., "events": N}  (to the requester)
"""

import argparse
import asyncio
import json
import logging
import signal

from websockets.asyncio.server import serve

from legacy_chat.agents import AGENTS
from legacy_chat.routing import Hub


async def handle(websocket, hub):
    try:
        async for raw in websocket:
            message = json.loads(raw)
            if message["type"] == "subscribe":
                hub.subscribe(message["thread_id"], websocket)
                await websocket.send(json.dumps({"type": "subscribed",
                                                 "thread_id": message["thread_id"]}))
            elif message["type"] == "start":
                agent = AGENTS[message["agent"]]
                thread_id = message["thread_id"]
                run_id = agent.new_run(thread_id)
                for event in agent.events(run_id, thread_id, int(message["events"])):
                    await hub.publish(event)
                await websocket.send(json.dumps({"type": "done", "request": message["request"],
                                                 "run_id": run_id,
                                                 "events": int(message["events"])}))
    finally:
        hub.unsubscribe(websocket)


async def main(host, port):
    hub = Hub()
    stop = asyncio.get_running_loop().create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.cancel)
    async with serve(lambda ws: handle(ws, hub), host, port) as server:
        bound = server.sockets[0].getsockname()[1]
        print(f"listening on ws://{host}:{bound}", flush=True)
        try:
            await stop
        except asyncio.CancelledError:
            pass
    print(f"dropped {hub.dropped} events", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(args.host, args.port))
