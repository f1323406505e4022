"""`threadwire audit`: find the code that makes, slices or splits IDs outside
threadwire.ids, and rewrite what maps onto it exactly (migrate.md section 3)."""

from __future__ import annotations

from threadwire.migrate.audit.config import AuditConfig, ConfigError, load_config
from threadwire.migrate.audit.model import AuditResult, Finding, Kind
from threadwire.migrate.audit.runner import FixOutcome, audit_tree, fix_tree, unified_diff

__all__ = [
    "AuditConfig",
    "AuditResult",
    "ConfigError",
    "Finding",
    "FixOutcome",
    "Kind",
    "audit_tree",
    "fix_tree",
    "load_config",
    "unified_diff",
]
