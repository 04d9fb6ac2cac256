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
from reconciler.telemetry.logging import (
    CONTEXT_KEYS,
    QUIET_LOGGERS,
    URL_LOGGERS,
    configure_logging,
    parse_levels,
)


@pytest.fixture(autouse=True)
def logging_restored() -> Iterator[None]:
    """Each test here configures logging; the tests after them get the configuration back."""
    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {name: logging.getLogger(name).level for name in [*QUIET_LOGGERS, "vendor"]}
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


@pytest.mark.parametrize("level", ["debug", "info", "warning"])
def test_libraries_that_log_request_urls_stay_at_warning_at_every_level(level: str) -> None:
    configure_logging(level, json_lines=True, stream=io.StringIO())

    for name in URL_LOGGERS:
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
        assert logging.getLogger(name).isEnabledFor(logging.WARNING), name


def test_log_levels_name_single_loggers_over_the_quiet_defaults() -> None:
    configure_logging(
        "info", json_lines=True, stream=io.StringIO(), levels={"httpx": "debug", "vendor": "error"}
    )

    assert logging.getLogger("httpx").isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("aiosqlite").isEnabledFor(logging.INFO)
    assert not logging.getLogger("vendor.sub").isEnabledFor(logging.WARNING)
    assert logging.getLogger("reconciler.daemon").isEnabledFor(logging.INFO)


def test_an_error_level_quiets_the_libraries_too() -> None:
    configure_logging("error", json_lines=True, stream=io.StringIO())

    assert not logging.getLogger("uvicorn.error").isEnabledFor(logging.WARNING)
    assert not logging.getLogger("aiosqlite").isEnabledFor(logging.WARNING)


def test_log_levels_text_parses_to_a_mapping() -> None:
    assert parse_levels(" aiosqlite=WARNING, httpx=debug,,uvicorn.error=info ") == {
        "aiosqlite": "warning",
        "httpx": "debug",
        "uvicorn.error": "info",
    }
    assert parse_levels("") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("aiosqlite", "'aiosqlite' is not logger=level"),
        ("aiosqlite=loud", "'aiosqlite=loud': the level is one of debug, info, warning, error"),
        ("=debug", "'=debug' is not logger=level"),
    ],
)
def test_a_bad_log_levels_item_is_named_in_the_error(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_levels(text)

    assert message in str(caught.value)


def test_every_logger_writes_json_lines_with_the_same_leading_and_context_keys() -> None:
    out = io.StringIO()
    configure_logging("debug", json_lines=True, stream=out)
    structlog.contextvars.bind_contextvars(workflow="w", run="r1")
    try:
        structlog.get_logger("reconciler.daemon").info("ours", n=1)
        logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
        logging.getLogger("vendor.plugin").debug("a plugin's own line")
        try:
            raise ValueError("bad")
        except ValueError:
            logging.getLogger("httpx").exception("request failed")
        logging.getLogger("aiosqlite").debug("executing")  # quiet below warning
    finally:
        structlog.contextvars.clear_contextvars()

    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(x["logger"], x["level"], x["event"]) for x in lines] == [
        ("reconciler.daemon", "info", "ours"),
        ("uvicorn.error", "info", "Started server process [42]"),
        ("vendor.plugin", "debug", "a plugin's own line"),
        ("httpx", "error", "request failed"),
    ]
    for line in lines:
        assert list(line)[:4] == ["timestamp", "level", "logger", "event"]
        assert {k: line[k] for k in CONTEXT_KEYS} == {
            "workflow": "w",
            "run": "r1",
            "state": None,
            "revision": None,
        }
    assert "ValueError: bad" in lines[3]["exception"]


def test_console_format_is_one_readable_line_per_record_of_any_logger() -> None:
    out = io.StringIO()
    configure_logging("info", json_lines=False, stream=out)
    structlog.get_logger("reconciler.daemon").info("reconciler started", workflow="w")
    logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")

    first, second = out.getvalue().splitlines()
    assert not first.startswith("{")
    assert "reconciler started" in first and "[reconciler.daemon]" in first
    assert "workflow=w" in first and "None" not in first
    assert "warning" in second and "[uvicorn.error]" in second


def test_a_third_party_line_is_masked_in_the_rendered_output(registered: str) -> None:
    out = io.StringIO()
    configure_logging("info", json_lines=True, stream=out, levels={"httpx": "info"})
    logging.getLogger("httpx").info("HTTP Request: GET %s", f"https://h/?key={registered}")
    try:
        raise RuntimeError(f"token {registered}")
    except RuntimeError:
        logging.getLogger("vendor").exception("failed")

    assert registered not in out.getvalue()
    first, second = (json.loads(x) for x in out.getvalue().splitlines())
    assert first["event"] == "HTTP Request: GET https://h/?key=***"
    assert "RuntimeError: token ***" in second["exception"]


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


def test_another_handler_on_the_root_logger_gets_reconciler_events_masked(
    registered: str, caplog: pytest.LogCaptureFixture
) -> None:
    configure_logging("info", json_lines=True, stream=io.StringIO())
    with caplog.at_level(logging.INFO):
        structlog.get_logger("reconciler.daemon").info(f"token {registered}", dsn=registered)
        try:
            raise RuntimeError(registered)
        except RuntimeError:
            structlog.get_logger("reconciler.daemon").exception("failed")

    assert caplog.records
    assert registered not in caplog.text
    assert all(registered not in (r.exc_text or "") for r in caplog.records)
