"""A workload against the chat service: every thread subscribes, starts runs on both
agents in turn, and counts the events that reach it. Prints one JSON object.

    python -m legacy_chat.client --url ws://127.0.0.1:8765 --threads 8 --runs 4
"""

import argparse
import asyncio
import json

from websockets.asyncio.client import connect


async def one_thread(url, thread_id, runs, events):
    """Subscribe to `thread_id`, start `runs` runs, and count what arrives by the time
    every run reports done (events are sent before the run's done on this connection)."""
    tally = {name: {"expected": 0, "delivered": 0} for name in ("chat", "tools")}
    agent_of = {}
    misrouted = 0
    async with connect(url) as websocket:
        await websocket.send(json.dumps({"type": "subscribe", "thread_id": thread_id}))
        assert json.loads(await websocket.recv())["type"] == "subscribed"
        for request in range(runs):
            agent = ("chat", "tools")[request % 2]
            tally[agent]["expected"] += events
            await websocket.send(json.dumps({"type": "start", "thread_id": thread_id,
                                             "agent": agent, "events": events,
                                             "request": request}))
        done = 0
        pending = {}
        while done < runs:
            message = json.loads(await websocket.recv())
            if message["type"] == "done":
                done += 1
                agent_of[message["run_id"]] = ("chat", "tools")[message["request"] % 2]
            elif message["thread_id"] != thread_id:
                misrouted += 1
            else:
                pending[message["run_id"]] = pending.get(message["run_id"], 0) + 1
        for run_id, count in pending.items():
            tally[agent_of[run_id]]["delivered"] += count
    return tally, misrouted


async def workload(url, threads, runs, events):
    results = await asyncio.gather(*(
        one_thread(url, f"user_{i}", runs, events) for i in range(threads)
    ))
    by_agent = {name: {"expected": 0, "delivered": 0} for name in ("chat", "tools")}
    misrouted = 0
    for tally, wrong in results:
        misrouted += wrong
        for name, counts in tally.items():
            for key, value in counts.items():
                by_agent[name][key] += value
    expected = sum(c["expected"] for c in by_agent.values())
    delivered = sum(c["delivered"] for c in by_agent.values())
    return {"expected": expected, "delivered": delivered, "lost": expected - delivered,
            "loss_rate": round((expected - delivered) / expected, 4) if expected else 0.0,
            "misrouted": misrouted, "by_agent": by_agent}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8765")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--runs", type=int, default=4, help="runs per thread, agents alternate")
    parser.add_argument("--events", type=int, default=25, help="events per run")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(workload(args.url, args.threads, args.runs, args.events))))
