"""Hostile inputs the fuzz tests share: crafted tokens, IDs, JSON an attacker can send,
the checks every answer must pass, and a snapshot of the store to prove refusals
change nothing.

The Hypothesis profile is deterministic (derandomize) and small: the fuzz suites run
against a real server in CI, so each property gets tens of examples, not thousands.
"""

from __future__ import annotations

import base64
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any, Final

import httpx
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from tests.gateway.harness import TEST_SECRET, Node

PROBLEM: Final = "application/problem+json"

FUZZ: Final = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    # One server serves every example of a test: that is the point (state accumulates
    # the way it does for a real attacker), so a shared function-scoped fixture is fine.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


# -- tokens --------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _segment(part: dict[str, Any] | bytes) -> str:
    return _b64(part if isinstance(part, bytes) else json.dumps(part).encode())


def craft_token(
    header: dict[str, Any] | bytes,
    payload: dict[str, Any] | bytes,
    *,
    key: str = TEST_SECRET,
    digest: str | None = "sha256",
) -> str:
    """A JWT built by hand (raw JSON allowed: NaN, 10**400, duplicate keys), signed with
    HMAC-`digest` over `key`, or with a junk signature when `digest` is None."""
    signing_input = f"{_segment(header)}.{_segment(payload)}"
    if digest is None:
        return f"{signing_input}.{_b64(b'not-a-signature')}"
    mac = hmac.new(key.encode(), signing_input.encode(), digest).digest()
    return f"{signing_input}.{_b64(mac)}"


HS256: Final = {"alg": "HS256", "typ": "JWT"}


def bad_tokens() -> list[tuple[str, str]]:
    """(name, token) of every kind of token the spec calls bad; made at call time so the
    expired one is expired and the valid-looking ones are fresh."""
    now = int(time.time())
    alice = {"sub": "alice", "exp": now + 3600}
    return [
        ("garbage", "not-a-token"),
        ("empty segments", ".."),
        ("alg none unsigned", f"{_segment({'alg': 'none'})}.{_segment(alice)}."),
        ("alg none signed", craft_token({"alg": "none"}, alice)),
        ("alg None spelled differently", craft_token({"alg": "None"}, alice)),
        ("HS512", craft_token({"alg": "HS512"}, alice, digest="sha512")),
        ("HS256 header, HS512 signature", craft_token(HS256, alice, digest="sha512")),
        ("RS256 header", craft_token({"alg": "RS256"}, alice, digest=None)),
        ("alg as a list", craft_token({"alg": ["HS256"]}, alice)),
        ("wrong secret", craft_token(HS256, alice, key="another-secret-of-the-same-length!!")),
        ("bad signature", craft_token(HS256, alice, digest=None)),
        ("missing sub", craft_token(HS256, {"exp": now + 3600})),
        ("sub outside the grammar", craft_token(HS256, {"sub": "al ice"})),
        ("sub with a slash", craft_token(HS256, {"sub": "alice/../bob"})),
        ("sub too long", craft_token(HS256, {"sub": "a" * 129})),
        ("empty sub", craft_token(HS256, {"sub": ""})),
        ("sub a number", craft_token(HS256, {"sub": 42})),
        ("sub a list", craft_token(HS256, {"sub": ["alice"]})),
        ("sub a lone surrogate", craft_token(HS256, b'{"sub": "\\ud800"}')),
        ("exp in the past", craft_token(HS256, {"sub": "alice", "exp": now - 60})),
        ("exp a string", craft_token(HS256, {"sub": "alice", "exp": "tomorrow"})),
        ("exp NaN", craft_token(HS256, b'{"sub": "alice", "exp": NaN}')),
        ("exp Infinity", craft_token(HS256, b'{"sub": "alice", "exp": Infinity}')),
        ("exp 1e400", craft_token(HS256, b'{"sub": "alice", "exp": 1e400}')),
        ("exp true", craft_token(HS256, {"sub": "alice", "exp": True})),
        ("nbf in the future", craft_token(HS256, {"sub": "alice", "nbf": now + 3600})),
        ("iat Infinity", craft_token(HS256, b'{"sub": "alice", "iat": Infinity}')),
        ("payload a list", craft_token(HS256, b'["alice"]')),
        ("payload not JSON", craft_token(HS256, b"alice")),
        ("header not JSON", craft_token(b"{", alice)),
        ("header a list", craft_token(b"[1]", alice)),
        ("kid an object", craft_token({**HS256, "kid": {"a": 1}}, alice)),
        ("unknown crit", craft_token({**HS256, "crit": ["x-unknown"]}, alice)),
        (
            "claims nested 5000 deep",
            craft_token(HS256, b'{"sub":"alice","x":' + b"[" * 5000 + b"]" * 5000 + b"}"),
        ),
        ("huge token", "a" * 40_000 + "." + "b" * 40_000 + "." + "c" * 100),
    ]


def authorization_values(node: Node) -> list[tuple[str, str]]:
    """(name, Authorization header value) that must all be refused with 401."""
    good = node.token("alice")
    values = [(name, f"Bearer {token}") for name, token in bad_tokens()]
    values += [
        ("Basic scheme", "Basic YWxpY2U6cGFzc3dvcmQ="),
        ("Bearer without a token", "Bearer"),
        ("Bearer and blanks", "Bearer     ."),
        ("a tab instead of a space", f"Bearer\t{good}"),
        ("token without a scheme", good),
        ("two tokens", f"Bearer {good} {good}"),
        ("Token scheme", f"Token {good}"),
        ("latin-1 junk", "Bearer \xff\xfe\xe9"),
    ]
    return values


# -- IDs and JSON --------------------------------------------------------------------

HOSTILE_IDS: Final = [
    "",
    " ",
    ".",
    "..",
    "...",
    "a/b",
    "/",
    "%2F",
    "a%2Fb",
    "%252F",
    "%",
    "?x=1",
    "#frag",
    "\x00",
    "a\x00b",
    "\n",
    "a\r\nX-Injected: 1",
    "\x7f",
    "é",
    "\u202eevil",
    "\U0001f600",
    "t1/../bobs",
    "x" * 128,
    "x" * 129,
    "x" * 5000,
    "thread_t1_run_1764000000000_7f3a9c01",
    "thread_bobs_run_1764000000000_7f3a9c01",
    "run_t1_7f3a9c01",
    "run_bobs_7f3a9c01",
    "0b7e3c2a-9f1d-4e5b-8a6c-2d4f6e8a0c1e",
    "thread__run_1_0000abcd",
    "run_",
    "NaN",
    "-1",
    "null",
]
"""Path IDs: traversal, encodings, controls, unicode, limits, other users' IDs."""

# Text the HTTP client can put in a URL: no lone surrogates (they cannot be encoded).
url_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=300)

hostile_ids = st.one_of(st.sampled_from(HOSTILE_IDS), url_text)

# Query parameter values: numbers of every kind, and text that merely looks like one.
query_values = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(
        [
            "",
            " ",
            "1e3",
            "0x10",
            "1_000",
            " 1",
            "1 ",
            "+1",
            "-0",
            "00",
            "１",
            "²",
            "true",
            "null",
            "NaN",
            "inf",
            "9" * 30,
            str(2**63),
            str(2**63 - 1),
            str(2**64),
        ]
    ),
    url_text,
)


def _json_leaves() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**80), max_value=2**80),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=30),
    )


json_values = st.recursive(
    _json_leaves(),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
"""Ordinary JSON values (any shape, any type)."""

NASTY_JSON_TEXT: Final = [
    "NaN",
    "Infinity",
    "-Infinity",
    '"\\ud800"',
    '"\\udfff\\ud800"',
    '{"\\ud800": 1}',
    '"\\u0000"',
    "9" * 5000,
    "1e400",
    "-0.0",
    "[" * 30000 + "]" * 30000,
    "[" * 65 + "]" * 65,
    "[" * 64 + "]" * 64,
    '{"a": 1, "a": 2}',
    "[" + ",".join(["0"] * 20000) + "]",
    '"' + "x" * 100_000 + '"',
]
"""JSON texts that parse (or almost do) and that naive code chokes on."""

nasty_json = st.one_of(st.sampled_from(NASTY_JSON_TEXT), json_values.map(lambda v: json.dumps(v)))
nasty_objects = st.one_of(
    st.sampled_from(NASTY_JSON_TEXT).map(lambda raw: '{"k": ' + raw + "}"),
    st.sampled_from(NASTY_JSON_TEXT).map(lambda raw: '{"a": [1, {"b": ' + raw + "}]}"),
)
"""JSON objects (as text) with a nasty value inside: what an object-typed member takes."""


def deep(levels: int, leaf: str = "1") -> str:
    """`levels` nested JSON objects around `leaf`, as text."""
    return '{"a":' * levels + leaf + "}" * levels


# -- checks ---------------------------------------------------------------------------


def check_answer(answer: httpx.Response) -> dict[str, Any] | None:
    """Every answer: never a 5xx, always X-Request-ID; a 4xx is a problem with a code.

    Returns the problem object of a refusal, None for a success.
    """
    what = f"{answer.request.method} {answer.request.url} -> {answer.status_code}"
    assert answer.status_code < 500, f"{what}: {answer.text[:300]}"
    assert answer.headers.get("x-request-id", "").startswith("req_"), what
    if answer.status_code < 400:
        return None
    assert answer.headers["content-type"] == PROBLEM, what
    body: dict[str, Any] = answer.json()
    assert isinstance(body.get("code"), str) and body["code"], f"{what}: {body}"
    assert body["status"] == answer.status_code, f"{what}: {body}"
    return body


@dataclass(frozen=True)
class Snapshot:
    """What the store holds for the test's users: threads, heads, runs."""

    threads: dict[str, tuple[str, ...]]
    heads: dict[str, int]
    runs: dict[str, tuple[tuple[str, str], ...]]


async def snapshot(node: Node, users: tuple[str, ...] = ("alice", "bob")) -> Snapshot:
    """Read the store directly (not through the API under test)."""
    store = node.gateway.store
    threads: dict[str, tuple[str, ...]] = {}
    heads: dict[str, int] = {}
    runs: dict[str, tuple[tuple[str, str], ...]] = {}
    for user in users:
        page = await store.list_threads(user, limit=1000)
        threads[user] = tuple(t.thread_id for t in page.items)
        for thread in page.items:
            heads[thread.thread_id] = await store.head_seq(thread.thread_id)
            run_page = await store.list_runs(thread.thread_id, limit=1000)
            runs[thread.thread_id] = tuple((r.run_id, r.status) for r in run_page.items)
    return Snapshot(threads, heads, runs)
