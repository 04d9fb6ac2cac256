from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import structlog

from reconciler.secrets.redaction import REGISTRY, register_secret
from reconciler.telemetry.logging import URL_LOGGERS, configure_logging


@pytest.fixture(autouse=True)
def logging_restored() -> Iterator[None]:
    """Each test here configures logging; the tests after them get the configuration back."""
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


SECRET = "log-canary-8c1f2e77"


@pytest.fixture
def registered() -> Iterator[str]:
    register_secret(SECRET)
    yield SECRET
    REGISTRY.discard(SECRET)


@pytest.mark.parametrize("level", ["info", "warning"])
def test_libraries_that_log_request_urls_stay_quiet_unless_debug(level: str) -> None:
    configure_logging(level, json_lines=True, stream=io.StringIO())
    for name in URL_LOGGERS:
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
    configure_logging("debug", json_lines=True, stream=io.StringIO())
    assert logging.getLogger("httpx").isEnabledFor(logging.DEBUG)


def test_a_third_party_record_is_masked_in_message_arguments_and_exception(
    registered: str, caplog: pytest.LogCaptureFixture
) -> None:
    configure_logging("debug", json_lines=True, stream=io.StringIO())
    plugin_log = logging.getLogger("some_vendor.plugin")
    with caplog.at_level(logging.DEBUG):
        plugin_log.info("HTTP Request: GET %s", f"https://h/v1?api_key={quote(registered)}")
        plugin_log.warning(f"dsn redis://:{registered}@cache:6379 refused")
        try:
            raise ValueError(f"bad header {registered.encode()!r}")
        except ValueError:
            plugin_log.exception("failed")

    assert registered not in caplog.text
    assert caplog.text.count("***") >= 3
    assert [r for r in caplog.records if r.name == "some_vendor.plugin" and r.exc_text]


def test_structlog_lines_are_masked_in_event_values_and_tracebacks(registered: str) -> None:
    out = io.StringIO()
    configure_logging("info", json_lines=True, stream=out)
    log = structlog.get_logger("t")
    log.info(f"got {registered}", detail={"dsn": f"nats://u:{registered}@h"}, n=1)
    try:
        raise RuntimeError(registered)
    except RuntimeError:
        log.exception("boom")

    assert registered not in out.getvalue()
    first = json.loads(out.getvalue().splitlines()[0])
    assert first["event"] == "got ***" and first["detail"] == {"dsn": "nats://u:***@h"}
    assert first["n"] == 1
