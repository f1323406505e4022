"""Two agents, written by two teams, each with its own run ID generator."""

from legacy_chat import run_id_generator
from legacy_chat.id_manager import generate_run_id


class ChatAgent:
    """Streams a reply token by token."""

    name = "chat"

    def new_run(self, thread_id):
        return generate_run_id(thread_id)

    def events(self, run_id, thread_id, count):
        for seq in range(count):
            yield {"type": "token", "run_id": run_id, "thread_id": thread_id, "seq": seq,
                   "text": f"token {seq}"}


class ToolAgent:
    """Reports the progress of a tool call."""

    name = "tools"

    def new_run(self, thread_id):
        return run_id_generator.make_run_id(thread_id)

    def events(self, run_id, thread_id, count):
        for seq in range(count):
            yield {"type": "tool_progress", "run_id": run_id, "thread_id": thread_id,
                   "seq": seq, "percent": round(100 * (seq + 1) / count)}


AGENTS = {agent.name: agent for agent in (ChatAgent(), ToolAgent())}
