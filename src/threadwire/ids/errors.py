"""`InvalidIdError`: the one exception the ID module raises for a bad ID, with a machine code."""

from __future__ import annotations

from typing import Final, Literal

ErrorCode = Literal[
    "empty", "too_long", "bad_charset", "unknown_format", "ambiguous", "unknown_run"
]

#: Every error code, in the order the checks run (ids.md section 4).
ERROR_CODES: Final[tuple[ErrorCode, ...]] = (
    "empty",
    "too_long",
    "bad_charset",
    "unknown_format",
    "ambiguous",
    "unknown_run",
)

QUOTE_LIMIT: Final = 80


class InvalidIdError(ValueError):
    """An ID was rejected; `code` says why in a word a program can branch on.

    >>> err = InvalidIdError("empty", "empty run ID: ''")
    >>> err.code, str(err), isinstance(err, ValueError)
    ('empty', "empty run ID: ''", True)
    """

    code: ErrorCode
    candidates: tuple[str, ...]

    def __init__(self, code: ErrorCode, message: str, candidates: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.code = code
        #: For `ambiguous`: the thread IDs the ID reads as, best first.
        self.candidates = candidates

    def __reduce__(self) -> tuple[type[InvalidIdError], tuple[str, str, tuple[str, ...]]]:
        # The default pickling would call __init__ with the message alone.
        return (type(self), (self.code, str(self), self.candidates))


def quote(value: object) -> str:
    """The input as it goes into an error message: cut to 80 characters, escaped.

    Never raises, whatever `value` is, because it runs while an error is being raised.
    """
    if issubclass(type(value), str):  # not isinstance: a __class__ property can fake that
        text = str.__str__(value)  # a str subclass's own __repr__ may do anything
        if len(text) > QUOTE_LIMIT:
            return f"{text[:QUOTE_LIMIT]!r}... ({len(text)} characters)"
        return repr(text)
    try:
        shown = repr(value)
    except Exception:  # a broken __repr__ must not replace the error we are raising
        shown = "<unprintable>"
    if len(shown) > QUOTE_LIMIT:
        shown = shown[:QUOTE_LIMIT] + "..."
    return f"{type(value).__name__} {ascii(shown)[1:-1]}"
