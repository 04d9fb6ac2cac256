"""Redactor: every registered secret value becomes *** wherever it appears."""

from __future__ import annotations

import logging

from reconciler.secrets.redaction import MASK, RedactingLogger, Redactor


def test_values_are_masked_in_text() -> None:
    r = Redactor(["hunter2"])
    assert r.redact("password=hunter2;") == f"password={MASK};"


def test_longest_value_wins_when_one_contains_another() -> None:
    r = Redactor(["abc", "abcdef"])
    assert r.redact("x abcdef y abc") == "x *** y ***"


def test_short_values_are_masked_too_and_empty_ones_ignored() -> None:
    r = Redactor(["", "ab"])
    assert len(r) == 1
    assert r.redact("cabd") == "c***d"


def test_redact_obj_walks_nested_structures_including_keys() -> None:
    r = Redactor(["s3cr3t"])
    obj = {"dsn": "postgres://u:s3cr3t@h", "list": ["s3cr3t", 1, None], "s3cr3t": True}
    assert r.redact_obj(obj) == {"dsn": "postgres://u:***@h", "list": ["***", 1, None], "***": True}


def test_a_value_with_a_trailing_newline_is_masked_with_and_without_it() -> None:
    r = Redactor(["token-value\n"])
    assert r.redact("got token-value.") == "got ***."


class _ListLogger:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, object]]] = []

    def bind(self, **kw: object) -> _ListLogger:
        return self

    def info(self, event: str, **kw: object) -> None:
        self.lines.append(("info", event, kw))

    def error(self, event: str, **kw: object) -> None:
        self.lines.append(("error", event, kw))


def test_redacting_logger_masks_events_and_values() -> None:
    sink = _ListLogger()
    log = RedactingLogger(sink, Redactor(["pa55word"]))
    log.bind(user="pa55word").info("login with pa55word", detail={"pw": "pa55word"}, n=3)
    log.exception("failed %s", "pa55word")
    assert "pa55word" not in repr(sink.lines)
    assert sink.lines[0] == ("info", "login with ***", {"detail": {"pw": "***"}, "n": 3})
    assert sink.lines[1][:2] == ("error", "failed ***")


def test_redacting_logger_works_over_a_stdlib_logger_adapter(caplog: object) -> None:
    class Adapter(logging.LoggerAdapter[logging.Logger]):
        def bind(self, **kw: object) -> Adapter:
            return self

    log = RedactingLogger(Adapter(logging.getLogger("t"), {}), Redactor(["zz-top"]))
    log.warning("value %s", "zz-top")  # must not raise
