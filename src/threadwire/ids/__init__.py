"""Every ID threadwire makes or reads, and the only code that builds or splits one.

The contract is ids.md (shared/spec): thread IDs, canonical and legacy run IDs, event,
connection and request IDs, and the errors for everything else.

>>> from threadwire import ids
>>> thread_id = ids.new_thread_id()
>>> run_id = ids.new_run_id(thread_id)
>>> ids.extract_thread_id(run_id) == thread_id
True
>>> ids.parse_run_id("run_user_42_7f3a9c01").thread_id
'user_42'
>>> try:
...     ids.parse_run_id("thread_a b_run_1_7f3a9c01")
... except ids.InvalidIdError as error:
...     error.code
'bad_charset'
"""

from __future__ import annotations

from threadwire.ids.errors import ERROR_CODES, ErrorCode, InvalidIdError
from threadwire.ids.facade import UnifiedIDManager
from threadwire.ids.formats import (
    CANONICAL,
    LEGACY_RUN,
    LEGACY_RUN_TS,
    UUID,
    FormatRegistry,
    IdFormat,
    Resolver,
    extract_thread_id,
    parse_run_id,
    registry,
    try_extract_thread_id,
)
from threadwire.ids.generate import (
    new_connection_id,
    new_event_id,
    new_request_id,
    new_run_id,
    new_thread_id,
)
from threadwire.ids.grammar import (
    MAX_RUN_ID_LENGTH,
    MAX_THREAD_ID_LENGTH,
    is_valid_thread_id,
    validate_thread_id,
)
from threadwire.ids.metrics import PARSE_ERRORS_TOTAL, PARSE_TOTAL
from threadwire.ids.migration import to_canonical
from threadwire.ids.parsed import ParsedRunId

#: The process-wide format registry, also under the names the spec's wording suggests.
format_registry = registry
default_registry = registry

__all__ = [
    "CANONICAL",
    "ERROR_CODES",
    "LEGACY_RUN",
    "LEGACY_RUN_TS",
    "MAX_RUN_ID_LENGTH",
    "MAX_THREAD_ID_LENGTH",
    "PARSE_ERRORS_TOTAL",
    "PARSE_TOTAL",
    "UUID",
    "ErrorCode",
    "FormatRegistry",
    "IdFormat",
    "InvalidIdError",
    "ParsedRunId",
    "Resolver",
    "UnifiedIDManager",
    "default_registry",
    "extract_thread_id",
    "format_registry",
    "is_valid_thread_id",
    "new_connection_id",
    "new_event_id",
    "new_request_id",
    "new_run_id",
    "new_thread_id",
    "parse_run_id",
    "registry",
    "to_canonical",
    "try_extract_thread_id",
    "validate_thread_id",
]
