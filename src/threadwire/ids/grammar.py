"""The thread-ID grammar and the length limits every ID is held to (ids.md sections 1 and 4)."""

from __future__ import annotations

import re
from typing import Final

from threadwire.ids.errors import InvalidIdError, quote

MAX_THREAD_ID_LENGTH: Final = 128
MAX_RUN_ID_LENGTH: Final = 256

#: The characters a thread ID (and therefore any run ID) may contain, for messages.
THREAD_ID_CHARS: Final = "A-Z a-z 0-9 _ - . :"

# Explicit ranges, never \w or \d: those accept non-ASCII letters and digits.
CHAR_CLASS: Final = r"[-.:0-9A-Z_a-z]"
THREAD_ID_RE: Final = re.compile(f"{CHAR_CLASS}{{1,{MAX_THREAD_ID_LENGTH}}}")
_BAD_CHAR_RE: Final = re.compile(r"[^-.:0-9A-Z_a-z]")


def as_str(value: object) -> str | None:
    """`value` as an exact `str` (a subclass is copied), or None when it is not a string."""
    if type(value) is str:
        return value
    if issubclass(type(value), str):  # not isinstance: a __class__ property can fake that
        # str.__str__ copies the characters; the subclass's own methods never run.
        return str.__str__(value)
    return None


def check_text(value: object, limit: int, kind: str) -> str:
    """Run the `empty`, `too_long` and `bad_charset` checks in that order; return the str.

    `kind` names the ID in messages ("run ID", "thread ID").
    """
    text = as_str(value)
    if text is None:
        raise InvalidIdError("empty", f"empty {kind}: expected a non-empty str, got {quote(value)}")
    if not text:
        raise InvalidIdError("empty", f"empty {kind}: ''")
    if len(text) > limit:
        raise InvalidIdError(
            "too_long", f"{kind} too long ({len(text)} > {limit} characters): {quote(text)}"
        )
    bad = _BAD_CHAR_RE.search(text)
    if bad is not None:
        raise InvalidIdError(
            "bad_charset",
            f"{kind} has {bad.group()!a} at position {bad.start()}, outside "
            f"{THREAD_ID_CHARS}: {quote(text)}",
        )
    return text


def validate_thread_id(thread_id: object) -> str:
    """Return `thread_id` if it is a valid thread ID (ids.md section 1), else raise.

    The same check serves user IDs, which share the grammar.

    >>> validate_thread_id("user_42")
    'user_42'
    >>> validate_thread_id("a/b")
    Traceback (most recent call last):
    ...
    threadwire.ids.errors.InvalidIdError: thread ID has '/' at position 1, outside ...
    """
    if type(thread_id) is str and THREAD_ID_RE.fullmatch(thread_id) is not None:
        return thread_id
    return check_text(thread_id, MAX_THREAD_ID_LENGTH, "thread ID")


def is_valid_thread_id(thread_id: object) -> bool:
    """True when `thread_id` is a valid thread ID; never raises.

    >>> is_valid_thread_id("thread_abc_123"), is_valid_thread_id(""), is_valid_thread_id(42)
    (True, False, False)
    """
    text = as_str(thread_id)
    return text is not None and THREAD_ID_RE.fullmatch(text) is not None
