"""The runtime's refusals: each carries a machine-readable `code` the gateway maps to HTTP.

A leaf module: it imports nothing of the package, so every layer may raise or catch
these without an import cycle.
"""

from __future__ import annotations


class RuntimeRefusal(Exception):
    """Base of the runtime's refusals; `code` is the wire name of the reason."""

    code = "runtime_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownAgent(RuntimeRefusal):
    """No agent is registered under the name asked for (HTTP 422)."""

    code = "unknown_agent"

    def __init__(self, name: object) -> None:
        super().__init__(f"no agent is registered as {_quote(name)}")
        self.name = name


class InvalidInput(RuntimeRefusal):
    """An agent's input failed its validation (HTTP 422); the message names the field."""

    code = "invalid_input"


class RunFinished(RuntimeRefusal):
    """The run already reached a final status, so it cannot be cancelled (HTTP 409)."""

    code = "run_finished"

    def __init__(self, run_id: str, status: str) -> None:
        super().__init__(f"run {_quote(run_id)} already finished ({status})")
        self.run_id = run_id
        self.status = status


class RunElsewhere(RuntimeRefusal):
    """The run is executed by another node, which alone may cancel it (HTTP 409)."""

    code = "run_elsewhere"

    def __init__(self, run_id: str, node_id: str | None) -> None:
        super().__init__(f"run {_quote(run_id)} is executed by node {_quote(node_id)}")
        self.run_id = run_id
        self.node_id = node_id


class CancelNotDelivered(RuntimeRefusal):
    """A cancel for a run of another node did not get an answer from that node.

    `code` says why: `node_unreachable` (no node listens under the owner's ID: it died,
    and the cluster will end the run, or it is reconnecting to Redis; HTTP 503) or
    `node_timeout` (it did not answer in time and may still cancel the run; HTTP 504).
    Either way the caller may retry; the run's own state is unchanged by this answer.
    """

    def __init__(self, run_id: str, node_id: str, code: str, detail: str) -> None:
        super().__init__(
            f"could not reach node {_quote(node_id)}, which executes run {_quote(run_id)}: "
            f"{detail}"
        )
        self.code = code
        self.run_id = run_id
        self.node_id = node_id


class ShuttingDown(RuntimeRefusal):
    """The supervisor stopped accepting runs because the node is shutting down (HTTP 503)."""

    code = "shutting_down"

    def __init__(self) -> None:
        super().__init__("the node is shutting down and accepts no new runs")


class AgentError(Exception):
    """Raised by an agent to fail its run with a message meant for the user.

    Any other exception ends the run with code `agent_exception` and a generic message;
    this one's `code` and `message` go into the `agent_error` event as they are, so
    only put there what a user may read.
    """

    def __init__(self, message: str, *, code: str = "agent_error") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class IngestError(RuntimeRefusal):
    """An ingested batch was refused: nothing of it was stored.

    `status` is the HTTP status, `index` the position of the first bad event (None when
    the refusal concerns the request as a whole).
    """

    def __init__(self, status: int, code: str, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.index = index

    def __repr__(self) -> str:
        return f"IngestError({self.status}, {self.code!r}, {self.message!r}, index={self.index})"


def _quote(value: object, limit: int = 80) -> str:
    text = value if isinstance(value, str) else repr(value)
    return repr(text[:limit] + ("..." if len(text) > limit else ""))
