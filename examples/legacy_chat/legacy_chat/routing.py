"""Fan-out of run events to the WebSocket subscribers of their thread.

Events carry only their run ID on the way through; the thread is read back out of it."""

import json
import logging

log = logging.getLogger(__name__)


def thread_for_run(run_id):
    """The thread a run belongs to; run IDs look like run_<thread>_<8 hex>."""
    if not run_id.startswith("run_"):
        return None
    return run_id[len("run_"):].rsplit("_", 1)[0]


class Hub:
    """Who listens to which thread, and delivery to them."""

    def __init__(self):
        self.subscribers = {}
        self.dropped = 0

    def subscribe(self, thread_id, websocket):
        self.subscribers.setdefault(thread_id, set()).add(websocket)

    def unsubscribe(self, websocket):
        for sockets in self.subscribers.values():
            sockets.discard(websocket)

    async def publish(self, event):
        thread = thread_for_run(event["run_id"])
        sockets = self.subscribers.get(thread, ()) if thread is not None else ()
        if not sockets:
            self.dropped += 1
            log.info("dropped an event of run %s: no subscriber", event["run_id"])
            return 0
        message = json.dumps(event)
        for websocket in list(sockets):
            await websocket.send(message)
        return len(sockets)
