"""Capturing the log in tests: every structlog event, whatever level an earlier test configured.

Tests that check what the daemon logs (a warning for a corrupt cache, the info line of a
revision) use :func:`every_log_line`; ``structlog.testing.capture_logs`` alone sees only the
levels the current configuration lets through, which depends on the tests run before.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, MutableMapping
from typing import Any

import structlog
from structlog.testing import capture_logs


@contextlib.contextmanager
def every_log_line() -> Iterator[list[MutableMapping[str, Any]]]:
    """Every structlog event at every level, whatever level an earlier test configured."""
    before = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with capture_logs() as logs:
            yield logs
    finally:
        structlog.configure(wrapper_class=before["wrapper_class"])
