"""Delivery verification: drive real clients against a deployment, inject faults, and
check that every event reached the right user, in order, exactly once.

    report = await verify(VerifyConfig(urls=("http://127.0.0.1:8000",), token_secret=s))
    assert report.ok, report.failures
"""

from __future__ import annotations

from threadwire.verify.config import Chaos, ConfigError, VerifyConfig, parse_chaos
from threadwire.verify.report import Report
from threadwire.verify.runner import Progress, verify

__all__ = ["Chaos", "ConfigError", "Progress", "Report", "VerifyConfig", "parse_chaos", "verify"]
