"""Fixtures of the browser tests: Debian's Chromium under Playwright, a real node.

Playwright's own browser download cannot work here, so the tests drive the system
`chromium`. With CI=true a missing Chromium is installed (as root, with apt-get) or
the tests fail; elsewhere they skip with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    ViewportSize,
    async_playwright,
    expect,
)
from tests.gateway.harness import Node, node_settings, serve_app

import threadwire.web

IN_CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
DESKTOP: ViewportSize = {"width": 1280, "height": 860}
PHONE: ViewportSize = {"width": 390, "height": 844}

# Generous for a loaded CI machine; expect() returns as soon as the page is there.
expect.set_options(timeout=20_000)


def _find_chromium() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _install_chromium() -> str | None:
    """apt-get install chromium, when we are root on Debian in CI; the path or None."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        subprocess.run(command, check=False, env=env, timeout=600, capture_output=True)
    return _find_chromium()


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """The Chromium executable; installs it under CI, skips elsewhere when missing."""
    path = _find_chromium() or (_install_chromium() if IN_CI else None)
    if path is None:
        reason = "Chromium not found at /usr/bin/chromium: apt-get install -y chromium (as root)"
        if IN_CI:
            pytest.fail(f"{reason}; CI=true requires it", pytrace=False)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def artifacts() -> Iterator[Path]:
    """Where screenshots go (git-ignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield ARTIFACTS


@pytest.fixture
async def web_node() -> AsyncIterator[Node]:
    """A node on the memory store serving the page (mounted here if the gateway did not)."""
    async with serve_app(node_settings()) as node:
        threadwire.web.mount(node.app)
        yield node


@pytest.fixture
async def browser(chromium_path: str) -> AsyncIterator[Browser]:
    """Headless Chromium, no network beyond the test server."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


class PageErrors:
    """Uncaught exceptions and console errors of the pages of one context."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def unexpected(self, *expected: str) -> list[str]:
        """The messages that contain none of `expected` (answers a test provoked)."""
        return [m for m in self.messages if not any(e in m for e in expected)]

    def watch(self, page: Page) -> None:
        page.on("pageerror", lambda error: self.messages.append(f"uncaught: {error}"))
        page.on(
            "console",
            lambda message: (
                self.messages.append(f"console: {message.text}")
                if message.type == "error" and "WebSocket" not in message.text
                else None
            ),
        )


@pytest.fixture
def page_errors() -> PageErrors:
    """What went wrong in the page; each test asserts it stayed empty."""
    return PageErrors()


@pytest.fixture
async def context(browser: Browser, page_errors: PageErrors) -> AsyncIterator[BrowserContext]:
    """A fresh desktop-sized browser context."""
    ctx = await browser.new_context(viewport=DESKTOP)
    try:
        yield ctx
    finally:
        await ctx.close()


@pytest.fixture
async def page(context: BrowserContext, page_errors: PageErrors) -> Page:
    """A page of `context` (its errors are watched)."""
    new = await context.new_page()
    page_errors.watch(new)
    return new
