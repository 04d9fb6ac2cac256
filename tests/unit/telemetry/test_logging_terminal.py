"""Log lines written for a terminal cannot drive it.

On a TTY the daemon logs with structlog's console renderer, which writes values as they are:
a rejection comment, an error quoting a workflow's message or a window's description can
carry ``ESC ]0;…BEL`` (retitle the window) or ``ESC [2J`` (clear the screen). In console mode
every control character but newline and tab is written as visible ``\\xNN`` text; JSON lines
already escape them.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
import structlog

from reconciler.telemetry.logging import URL_LOGGERS, configure_logging

HOSTILE = "no\x1b]0;pwned\x07\x1b[2J\r\x9b31m"


@pytest.fixture(autouse=True)
def logging_restored() -> Iterator[None]:
    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {name: logging.getLogger(name).level for name in URL_LOGGERS}
    yield
    structlog.configure(**config)
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, was in quiet.items():
        logging.getLogger(name).setLevel(was)


def test_console_lines_show_control_characters_of_events_and_values_as_text() -> None:
    out = io.StringIO()
    configure_logging("info", json_lines=False, stream=out)
    structlog.get_logger("t").warning(f"run failed: {HOSTILE}", error=HOSTILE, count=3)
    line = out.getvalue()
    assert not any(c in line for c in "\x1b\x07\r\x9b"), repr(line)
    assert "\\x1b]0;pwned\\x07" in line
    assert "count=3" in line
