"""The web page in a real browser against a real node: sign in, runs, the live timeline."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, WebSocket, WebSocketRoute, expect
from tests.gateway.harness import Node
from tests.web.conftest import PHONE, PageErrors

from threadwire.events import NewEvent, utcnow
from threadwire.gateway.ws import Connection
from threadwire.ids import new_event_id, new_run_id

pytestmark = pytest.mark.browser


def demo_event_count(steps: int) -> int:
    """run_queued, agent_started, 3 per step, agent_message, agent_completed."""
    return 4 + 3 * steps


def close_websockets(node: Node, user: str, code: int, reason: str) -> int:
    """Close every WebSocket of `user` from the server side; how many there were.

    The gateway has no admin endpoint for this, and should not: the test reaches into
    the in-process node, as an operator's restart or the lagging check would.
    """
    connections = [c for c in node.gateway.clients if isinstance(c, Connection) and c.user == user]
    for connection in connections:
        connection.close(code, reason)
    return len(connections)


class Frames:
    """Every WebSocket the page opens, with the JSON frames it sent and received."""

    def __init__(self, page: Page) -> None:
        self.sent: list[list[dict[str, Any]]] = []
        self.received: list[list[dict[str, Any]]] = []
        page.on("websocket", self._opened)

    def _opened(self, ws: WebSocket) -> None:
        sent: list[dict[str, Any]] = []
        received: list[dict[str, Any]] = []
        self.sent.append(sent)
        self.received.append(received)
        ws.on("framesent", lambda payload: sent.append(json.loads(payload)))
        ws.on("framereceived", lambda payload: received.append(json.loads(payload)))

    def event_seqs(self, socket: int) -> list[int]:
        return [f["event"]["seq"] for f in self.received[socket] if f.get("type") == "event"]

    def subscribes(self, socket: int) -> list[dict[str, Any]]:
        return [f for f in self.sent[socket] if f.get("op") == "subscribe"]


async def shown_seqs(page: Page) -> list[int]:
    """The seqs of the timeline's rows, in page order."""
    rows: list[str] = await page.locator("#timeline .ev").evaluate_all(
        "rows => rows.map(row => row.dataset.seqs)"
    )
    return [int(seq) for row in rows for seq in row.split()]


async def snapshot(page: Page, path: Path) -> None:
    """A full-page screenshot from the top (so the sticky bar sits where a user sees it)."""
    await page.evaluate("() => window.scrollTo(0, 0)")
    await page.screenshot(path=path, full_page=True)


async def sign_in_by_link(page: Page, node: Node, user: str, fragment: str = "") -> None:
    await page.goto(f"{node.url}/#token={node.token(user)}{fragment}")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "connected")
    await expect(page.locator("#user")).to_have_text(user)


async def record_states(page: Page) -> None:
    """Keep every connection state the page shows in `window.states`."""
    await page.evaluate(
        """() => {
          const conn = document.querySelector('#conn');
          window.states = [conn.dataset.state];
          new MutationObserver(() => {
            if (window.states.at(-1) !== conn.dataset.state) window.states.push(conn.dataset.state);
          })
            .observe(conn, {attributes: true, attributeFilter: ['data-state']});
        }"""
    )


async def make_thread(node: Node, user: str, thread_id: str) -> None:
    async with httpx.AsyncClient(base_url=node.url, headers=node.auth(user)) as http:
        answer = await http.post("/v1/threads", json={"thread_id": thread_id})
        assert answer.status_code == 201, answer.text


async def test_a_demo_run_streams_in_order_and_resumes_without_duplicates_after_a_server_close(
    web_node: Node, page: Page, page_errors: PageErrors, artifacts: Path
) -> None:
    frames = Frames(page)
    await sign_in_by_link(page, web_node, "alice")
    await expect(page).not_to_have_url(re.compile("token"))

    await page.get_by_role("button", name="Create").click()
    await expect(page.locator("#thread-view")).to_be_visible()
    steps = 8
    await page.get_by_label("Input (a JSON object)").fill(
        json.dumps({"prompt": "how do websockets resume?", "steps": steps, "delay_ms": 150})
    )
    await page.get_by_role("button", name="Start run").click()
    counter = page.locator("#counter")
    await page.wait_for_function(
        "() => Number(document.querySelector('#counter').dataset.received) >= 6"
    )

    await record_states(page)
    assert close_websockets(web_node, "alice", 1012, "test: restart") == 1

    total = demo_event_count(steps)
    await expect(page.locator(".run-title .badge")).to_have_text("completed")
    await expect(counter).to_have_attribute("data-received", str(total))
    await expect(counter).to_have_attribute("data-head", str(total))
    await expect(page.locator("#conn")).to_have_attribute("data-state", "connected")
    assert await shown_seqs(page) == list(range(1, total + 1))

    # It resumed on a second socket from exactly the last seq it had on the first.
    assert len(frames.sent) == 2
    before = frames.event_seqs(0)
    assert before == list(range(1, len(before) + 1))
    [resume] = frames.subscribes(1)
    assert resume["after_seq"] == before[-1]
    assert frames.event_seqs(1) == list(range(before[-1] + 1, total + 1))
    await expect(page.locator("#conn-log")).to_contain_text("1012")
    states: list[str] = await page.evaluate("window.states")
    assert states[-2:] == ["reconnecting", "connected"], states

    # Tool calls are one row each, with a duration; the message is text.
    tools = page.locator("#timeline .ev-tool")
    await expect(tools).to_have_count(steps)
    await expect(tools.first).to_contain_text(re.compile(r"search.*done.*\d+ ms", re.S))
    await expect(page.locator(".ev-message .body")).to_have_text(
        "Here is what I found about 'how do websockets resume?' in 8 steps."
    )
    await snapshot(page, artifacts / "desktop-run.png")
    assert page_errors.messages == []


async def test_lagging_close_shows_lagging_then_catches_up_from_the_store(
    web_node: Node, page: Page, page_errors: PageErrors
) -> None:
    await make_thread(web_node, "alice", "lag")
    await emit(web_node, "lag", ["agent_message"] * 5)
    await sign_in_by_link(page, web_node, "alice", "&thread=lag")
    counter = page.locator("#counter")
    await expect(counter).to_have_attribute("data-received", "5")
    await record_states(page)

    assert close_websockets(web_node, "alice", 4008, "lagging: resume with after_seq") == 1
    await emit(web_node, "lag", ["agent_message"] * 5)

    await expect(counter).to_have_attribute("data-received", "10")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "connected")
    states: list[str] = await page.evaluate("window.states")
    assert "lagging" in states, states
    assert states[-1] == "connected"
    assert await shown_seqs(page) == list(range(1, 11))
    await expect(counter).to_have_attribute("data-duplicates", "0")
    assert page_errors.messages == []


async def test_reconnecting_is_shown_while_the_server_refuses_then_it_resumes(
    web_node: Node, page: Page, page_errors: PageErrors, artifacts: Path
) -> None:
    await make_thread(web_node, "alice", "flaky")
    await emit(web_node, "flaky", ["agent_message"] * 3)
    await sign_in_by_link(page, web_node, "alice", "&thread=flaky")
    counter = page.locator("#counter")
    await expect(counter).to_have_attribute("data-received", "3")

    gateway = web_node.gateway
    gateway.draining = True  # new WebSockets are refused, as while a node restarts
    try:
        assert close_websockets(web_node, "alice", 1001, "server shutting down") == 1
        await expect(page.locator("#conn")).to_have_attribute("data-state", "reconnecting")
        await expect(page.locator("#conn-state")).to_have_text("Reconnecting…")
        await expect(page.locator("#conn-detail")).to_contain_text(re.compile(r"retrying in \d+ s"))
        await expect(page.get_by_role("button", name="Retry now")).to_be_visible()
        await emit(web_node, "flaky", ["agent_message"] * 2)
        await snapshot(page, artifacts / "desktop-reconnecting.png")
    finally:
        gateway.draining = False

    # The page retries on its own (with backoff), and resumes where it stopped.
    await expect(page.locator("#conn")).to_have_attribute("data-state", "connected")
    await expect(counter).to_have_attribute("data-received", "5")
    await expect(page.get_by_role("button", name="Retry now")).to_be_hidden()
    assert await shown_seqs(page) == [1, 2, 3, 4, 5]
    assert page_errors.unexpected("status of 503") == []


async def test_a_lost_frame_is_asked_for_again_and_a_repeated_one_is_dropped(
    web_node: Node, page: Page, page_errors: PageErrors
) -> None:
    """Between the page and a correct server, a proxy loses seq 3 and repeats every
    event once: the page must still show 1..10, each once, in order."""
    await make_thread(web_node, "alice", "lossy")
    lost: list[int] = []

    def proxy(route: WebSocketRoute) -> None:
        server = route.connect_to_server()

        def to_page(message: str | bytes) -> None:
            frame = json.loads(message)
            seq = frame["event"]["seq"] if frame.get("type") == "event" else None
            if seq == 3 and not lost:
                lost.append(seq)
                return
            route.send(message)
            if seq is not None:
                route.send(message)

        server.on_message(to_page)

    await page.route_web_socket(re.compile(r"/v1/ws"), proxy)
    await sign_in_by_link(page, web_node, "alice", "&thread=lossy")
    await emit(web_node, "lossy", ["agent_thinking"] * 10)

    counter = page.locator("#counter")
    await expect(counter).to_have_attribute("data-received", "10")
    assert lost == [3]
    assert await shown_seqs(page) == list(range(1, 11))
    assert int(await counter.get_attribute("data-duplicates") or 0) > 0
    await expect(page.locator("#conn-log")).to_contain_text("expected seq 3, got 4")
    assert page_errors.messages == []


async def test_a_running_run_can_be_cancelled_from_its_header(
    web_node: Node, page: Page, page_errors: PageErrors
) -> None:
    await sign_in_by_link(page, web_node, "erin")
    await page.get_by_role("button", name="Create").click()
    await page.get_by_label("Input (a JSON object)").fill(
        '{"prompt": "slow", "steps": 1, "delay_ms": 60000}'
    )
    await page.get_by_role("button", name="Start run").click()
    badge = page.locator(".run-title .badge")
    await expect(badge).to_have_text("running")
    await page.get_by_role("button", name="Cancel run").click()
    await expect(badge).to_have_text("cancelled")
    await expect(page.get_by_role("button", name="Cancel run")).to_be_hidden()
    await expect(page.locator("#timeline .ev-cancelled")).to_have_count(1)
    await expect(page.locator("#timeline .ev-tool")).to_contain_text("cancelled")
    assert page_errors.messages == []


async def test_event_data_is_shown_as_text_and_errors_are_highlighted(
    web_node: Node, page: Page, page_errors: PageErrors, artifacts: Path
) -> None:
    await make_thread(web_node, "alice", "hostile")
    hostile = '<img src=x onerror="window.pwned=1"><b>bold</b>'
    run_id = new_run_id("hostile")
    events: list[tuple[str, dict[str, Any]]] = [
        ("run_queued", {"agent": hostile}),
        ("agent_started", {"agent": hostile}),
        ("tool_executing", {"tool": hostile, "call": 1, "args": {"q": hostile}}),
        ("tool_completed", {"tool": hostile, "call": 1, "duration_ms": 12, "error": hostile}),
        ("agent_message", {"text": hostile}),
        ("custom.note", {"html": hostile}),
        ("agent_error", {"code": "tool_failed", "message": hostile}),
    ]
    await web_node.gateway.coordinator.emit(
        [NewEvent(new_event_id(), "hostile", run_id, t, utcnow(), d) for t, d in events]
    )
    await sign_in_by_link(page, web_node, "alice", "&thread=hostile")
    await expect(page.locator("#counter")).to_have_attribute("data-received", "7")

    timeline = page.locator("#timeline")
    await expect(timeline.locator("img, b")).to_have_count(0)
    assert await page.evaluate("window.pwned") is None
    await expect(page.locator(".ev-message .body")).to_have_text(hostile)
    await expect(page.locator(".run-title .badge")).to_have_text("failed")
    await expect(timeline.locator(".ev-failed")).to_have_count(2)
    await expect(timeline.locator(".ev-error")).to_contain_text(f"tool_failed: {hostile}")

    # Each event's seq and canonical run ID are one click away.
    chip = timeline.locator(".ev-error .seq")
    await chip.click()
    await expect(chip).to_have_attribute("aria-expanded", "true")
    detail = timeline.locator(".ev-error .event-detail")
    await expect(detail).to_contain_text("seq7")
    await expect(detail).to_contain_text(f"run ID{run_id}")
    await snapshot(page, artifacts / "desktop-errors.png")
    await page.emulate_media(color_scheme="dark")
    await snapshot(page, artifacts / "desktop-errors-dark.png")
    assert page_errors.messages == []


async def test_sign_in_by_pasting_a_token_and_out_again(
    web_node: Node, page: Page, page_errors: PageErrors, artifacts: Path
) -> None:
    await page.goto(web_node.url + "/")
    form = page.locator("#sign-in")
    await expect(form).to_be_visible()
    await expect(form).to_contain_text("threadwire token alice")
    await page.screenshot(path=artifacts / "desktop-sign-in.png")

    token = page.get_by_label("Token")
    await token.fill("not-a-token")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#token-error")).to_contain_text("not a token")
    await expect(token).to_have_attribute("aria-invalid", "true")

    await token.fill(web_node.token("bob", ttl=-10))
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#token-error")).to_contain_text("expired")

    forged = web_node.token("bob")[:-4] + "AAAA"
    await token.fill(forged)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#token-error")).to_contain_text("refused")

    await token.fill(web_node.token("bob"))
    await token.press("Enter")
    await expect(page.locator("#user")).to_have_text("bob")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "connected")
    await expect(page.locator("#threads-empty")).to_be_visible()

    # The agent field offers every agent the node registered (GET /v1/agents).
    await expect(page.locator("#agents option[value='chat']")).to_have_count(1)
    await expect(page.locator("#agents option[value='demo']")).to_have_count(1)

    await page.reload()  # the tab keeps its token
    await expect(page.locator("#user")).to_have_text("bob")

    await page.get_by_role("button", name="Sign out").click()
    await expect(form).to_be_visible()
    await expect(page.locator("#conn")).to_have_attribute("data-state", "offline")
    await page.reload()
    await expect(form).to_be_visible()
    # The forged token's refusal is the one error the browser logs.
    assert page_errors.unexpected("status of 401") == []


async def test_keyboard_alone_creates_a_thread_starts_a_run_and_opens_details(
    web_node: Node, page: Page, page_errors: PageErrors
) -> None:
    await sign_in_by_link(page, web_node, "carol")
    unlabelled = await page.evaluate(
        """() => [...document.querySelectorAll('input, textarea, select')]
             .filter(el => el.labels.length === 0 && !el.getAttribute('aria-label'))
             .map(el => el.id)"""
    )
    assert unlabelled == []

    await page.get_by_label("New thread").focus()
    await page.keyboard.type("kb")
    await page.keyboard.press("Enter")
    await expect(page.locator("#thread-id")).to_have_text("kb")

    await page.get_by_label("Input (a JSON object)").focus()
    await page.keyboard.press("Control+a")
    await page.keyboard.type('{"prompt": "keys", "steps": 1, "delay_ms": 0}')
    await page.keyboard.press("Control+Enter")
    await expect(page.locator(".run-title .badge")).to_have_text("completed")

    first = page.locator("#timeline .seq").first
    await first.focus()
    await page.keyboard.press("Enter")
    await expect(first).to_have_attribute("aria-expanded", "true")
    await expect(page.locator("#timeline .event-detail").first).to_contain_text("run_queued")

    await page.get_by_label("Input (a JSON object)").fill("[1, 2]")
    await page.get_by_role("button", name="Start run").click()
    await expect(page.locator("#run-error")).to_contain_text("must be a JSON object")
    await page.get_by_label("Input (a JSON object)").fill('{"prompt": "x", "steps": 5000}')
    await page.get_by_role("button", name="Start run").click()
    await expect(page.locator("#run-error")).to_contain_text("invalid_input")
    await page.get_by_label("Agent").fill("nope")
    await page.get_by_role("button", name="Start run").click()
    await expect(page.locator("#run-error")).to_contain_text('No agent named "nope"')
    assert page_errors.unexpected("status of 422") == []


async def test_phone_width_shows_everything_without_sideways_scrolling(
    web_node: Node, browser: Browser, page_errors: PageErrors, artifacts: Path
) -> None:
    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        page = await context.new_page()
        page_errors.watch(page)
        await sign_in_by_link(page, web_node, "dave")
        await page.get_by_role("button", name="Create").click()
        await page.get_by_label("Input (a JSON object)").fill(
            '{"prompt": "a long question that wraps on a phone screen", "steps": 2, "delay_ms": 0}'
        )
        await page.get_by_role("button", name="Start run").click()
        await expect(page.locator(".run-title .badge")).to_have_text("completed")
        await page.locator("#timeline .ev-tool .seq").first.click()
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        await page.screenshot(path=artifacts / "phone-run-viewport.png")
        await snapshot(page, artifacts / "phone-run.png")
        await page.goto(web_node.url + "/")
        await page.get_by_role("button", name="Sign out").click()
        await snapshot(page, artifacts / "phone-sign-in.png")
    finally:
        await context.close()
    assert page_errors.messages == []


async def emit(node: Node, thread_id: str, types: list[str]) -> None:
    """Store and publish one event of each type on `thread_id`, in one run."""
    run_id = new_run_id(thread_id)
    await node.gateway.coordinator.emit(
        [
            NewEvent(new_event_id(), thread_id, run_id, type_, utcnow(), {"text": f"chunk {i}"})
            for i, type_ in enumerate(types)
        ]
    )
