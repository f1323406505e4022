"""SQLite foreign keys with their ON UPDATE action and deferrability, however declared.

SQLAlchemy reads the options of a SQLite key only from a `FOREIGN KEY (...)` table
constraint; a column's own `REFERENCES t(c) ON UPDATE CASCADE` (the usual way to write
one by hand) would look like a key that rejects the rewrite. So the keys and their
actions come from `pragma_foreign_key_list`, and deferrability, which no pragma
reports, from the table's own DDL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.engine import Connection

_TOKEN: Final = re.compile(
    r"""
      (?P<skip>\s+|--[^\n]*|/\*.*?(?:\*/|$))
    | (?P<quoted>"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\]|'(?:[^']|'')*')
    | (?P<word>[A-Za-z0-9_$\x80-\U0010ffff]+)
    | (?P<punct>.)
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class _Token:
    text: str
    """An identifier unquoted, a word as written, or one punctuation character."""
    kind: str
    """word, quoted or punct."""

    def is_(self, keyword: str) -> bool:
        return self.kind == "word" and self.text.upper() == keyword

    def punct(self, char: str) -> bool:
        return self.kind == "punct" and self.text == char


def _tokens(sql: str) -> list[_Token]:
    found: list[_Token] = []
    for match in _TOKEN.finditer(sql):
        kind, text = match.lastgroup or "punct", match.group()
        if kind == "quoted":
            closer = {"[": "]"}.get(text[0], text[0])
            found.append(_Token(text[1:-1].replace(closer * 2, closer), kind))
        elif kind != "skip":
            found.append(_Token(text, kind))
    return found


def _items(tokens: list[_Token]) -> Iterator[list[_Token]]:
    """The column definitions and table constraints of a CREATE TABLE statement."""
    depth, item = 0, list[_Token]()
    for token in tokens:
        if token.punct("("):
            depth += 1
            if depth == 1:
                continue
        elif token.punct(")"):
            depth -= 1
            if depth == 0:
                break
        elif token.punct(",") and depth == 1:
            yield item
            item = []
            continue
        if depth >= 1:
            item.append(token)
    if item:
        yield item


def _deferrable_keys(sql: str) -> dict[tuple[tuple[str, ...], str], bool]:
    """(constrained columns, referred table), lower-cased -> declared DEFERRABLE."""
    found: dict[tuple[tuple[str, ...], str], bool] = {}
    for item in _items(_tokens(sql)):
        at = next((i for i, t in enumerate(item) if t.is_("REFERENCES")), None)
        if at is None or at + 1 >= len(item) or not item:
            continue
        head = item[2:] if item[0].is_("CONSTRAINT") else item
        if len(head) > 1 and head[0].is_("FOREIGN") and head[1].is_("KEY"):
            close = next((i for i, t in enumerate(head) if t.punct(")")), len(head))
            columns = tuple(t.text.lower() for t in head[2:close] if t.kind != "punct")
        else:
            columns = (head[0].text.lower(),)
        referred = at + 1
        if referred + 2 < len(item) and item[referred + 1].punct("."):
            referred += 2  # schema.table
        words = [t.text.upper() for t in item[referred + 1 :] if t.kind == "word"]
        deferrable = any(
            w == "DEFERRABLE" and (i == 0 or words[i - 1] != "NOT") for i, w in enumerate(words)
        )
        found[(columns, item[referred].text.lower())] = deferrable
    return found


def sqlite_foreign_keys(conn: Connection, table: str) -> list[dict[str, Any]]:
    """The keys of `table` in the shape of SQLAlchemy's reflected foreign keys."""
    sql = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).scalar()
    declared = _deferrable_keys(str(sql or ""))
    rows = conn.exec_driver_sql(
        'SELECT id, "table", "from", "to", on_update FROM pragma_foreign_key_list(?) '
        "ORDER BY id, seq",
        (table,),
    ).all()
    keys: dict[object, dict[str, Any]] = {}
    for key_id, referred, column, target, on_update in rows:
        key = keys.setdefault(
            key_id,
            {
                "constrained_columns": [],
                "referred_schema": None,
                "referred_table": referred,
                "referred_columns": [],
                "options": {"onupdate": on_update},
            },
        )
        key["constrained_columns"].append(column)
        if target is not None:
            key["referred_columns"].append(target)
    for key in keys.values():
        signature = (tuple(c.lower() for c in key["constrained_columns"]), key["referred_table"])
        key["options"]["deferrable"] = declared.get((signature[0], signature[1].lower()), False)
    return list(keys.values())
