"""Serving the page (no browser needed), and rules the static files must keep."""

from __future__ import annotations

import re
from importlib.resources import files

import httpx
from fastapi import FastAPI
from tests.gateway.harness import Node, node_settings, serve_app

import threadwire.web
from threadwire.web import ASSETS_PATH, STATIC_DIR, mount

MODULES = sorted(path.name for path in STATIC_DIR.glob("*.js"))


async def test_the_page_is_served_at_the_root_with_a_strict_policy(web_node: Node) -> None:
    async with httpx.AsyncClient(base_url=web_node.url) as http:
        answer = await http.get("/")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    assert "unsafe-inline" not in answer.headers["content-security-policy"]
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert '<script type="module" src="ui/app.js">' in answer.text


async def test_every_asset_is_served_under_ui_with_its_type(web_node: Node) -> None:
    async with httpx.AsyncClient(base_url=web_node.url) as http:
        for name in MODULES:
            answer = await http.get(f"{ASSETS_PATH}/{name}")
            assert answer.status_code == 200, name
            assert answer.headers["content-type"].split(";")[0] in {
                "text/javascript",
                "application/javascript",
            }
        css = await http.get(f"{ASSETS_PATH}/style.css")
        assert css.headers["content-type"].startswith("text/css")
        # Only the static directory is exposed, not the package's Python.
        assert (await http.get(f"{ASSETS_PATH}/__init__.py")).status_code == 404
        assert (await http.get(f"{ASSETS_PATH}/../__init__.py")).status_code == 404


async def test_the_gateway_serves_the_page_without_help() -> None:
    async with serve_app(node_settings()) as node, httpx.AsyncClient(base_url=node.url) as http:
        page = await http.get("/")
        module = await http.get(f"{ASSETS_PATH}/app.js")
    assert page.status_code == 200
    assert "ui/app.js" in page.text
    assert module.status_code == 200


def test_mount_replaces_another_root_route_and_is_idempotent() -> None:
    app = FastAPI()

    @app.get("/")
    async def placeholder() -> str:
        return "placeholder"

    mount(app)
    routes = list(app.router.routes)
    mount(app)
    assert app.router.routes == routes
    roots = [r for r in routes if getattr(r, "path", None) == "/"]
    assert len(roots) == 1
    assert getattr(roots[0], "endpoint", None) is threadwire.web.index


def test_the_static_files_are_package_resources() -> None:
    static = files("threadwire.web") / "static"
    for name in ["index.html", "style.css", *MODULES]:
        assert (static / name).is_file(), name


def test_no_script_parses_html_or_evaluates_strings() -> None:
    forbidden = re.compile(
        r"\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function\("
        r"|setTimeout\(\s*['\"`]|createContextualFragment|DOMParser"
    )
    for name in MODULES:
        text = (STATIC_DIR / name).read_text()
        assert not forbidden.search(text), f"{name}: {forbidden.search(text)}"


def test_modules_import_only_each_other_and_nothing_is_fetched_from_elsewhere() -> None:
    for name in MODULES:
        text = (STATIC_DIR / name).read_text()
        for target in re.findall(r'^import[^"]*"([^"]+)";', text, re.M):
            assert target.startswith("./") and (STATIC_DIR / target[2:]).is_file(), target
        assert "https://" not in text and "http://" not in text, name
    page = (STATIC_DIR / "index.html").read_text()
    for reference in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert reference.startswith(("ui/", "#", "data:")), reference
    assert "@import" not in (STATIC_DIR / "style.css").read_text()
