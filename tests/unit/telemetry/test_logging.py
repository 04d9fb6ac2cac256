from __future__ import annotations

import io
import sys

import pytest
import structlog

from reconciler.telemetry.logging import configure_logging


def test_logs_follow_stderr_when_it_is_swapped_after_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging("info", json_lines=True)
    first.close()  # e.g. a CLI test runner's captured stream, closed when its test ended

    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    structlog.get_logger("t").info("still logging", workflow="w")

    assert '"event": "still logging"' in second.getvalue()
