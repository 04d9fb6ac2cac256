"""Redactor: every registered secret value becomes *** wherever it appears."""

from __future__ import annotations

import base64
import json
import logging
from urllib.parse import quote, quote_plus

import pytest
from pydantic import BaseModel, ValidationError

from reconciler.secrets.redaction import (
    MASK,
    RedactingLogger,
    Redactor,
    SecretRegistry,
    describe_validation_error,
    secret_forms,
)


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


def test_redacting_logger_works_over_a_stdlib_logger_adapter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Adapter(logging.LoggerAdapter[logging.Logger]):
        def bind(self, **kw: object) -> Adapter:
            return self

    log = RedactingLogger(Adapter(logging.getLogger("t"), {}), Redactor(["zz-top"]))
    with caplog.at_level(logging.WARNING, logger="t"):
        log.warning("value %s", "zz-top")

    assert [r.getMessage() for r in caplog.records if r.name == "t"] == ["value ***"]


TOKEN = "tok/en+with space@and:colon=="
MULTILINE = "line1-secret-value\nline2-secret-value"


@pytest.mark.parametrize(
    "shown",
    [
        f"https://h/v1/items/{quote(TOKEN, safe='')}",  # in a URL path
        f"https://h/v1?key={quote_plus(TOKEN)}",  # form-encoded query
        f"https://h/v1/{quote(TOKEN)}",  # quote() keeps the slash
        json.dumps({"token": TOKEN}),
        repr({"token": TOKEN}),
        base64.b64encode(TOKEN.encode()).decode(),
        base64.urlsafe_b64encode(TOKEN.encode()).decode(),
    ],
)
def test_a_secret_is_masked_in_its_encoded_and_escaped_forms(shown: str) -> None:
    masked = Redactor([TOKEN]).redact(f"sent {shown} ok")
    assert MASK in masked
    assert not any(form in masked for form in secret_forms(TOKEN))


def test_a_secret_with_a_newline_is_masked_in_its_repr_and_bytes_forms() -> None:
    r = Redactor([MULTILINE])
    for shown in (repr(MULTILINE), repr(MULTILINE.encode()), json.dumps(repr(MULTILINE.encode()))):
        masked = r.redact(f"Invalid header value {shown}")
        assert "line1-secret-value" not in masked and "line2-secret-value" not in masked
        assert MASK in masked


@pytest.mark.parametrize("user", ["bob", "al", "x-access-token", ""])
def test_a_secret_inside_basic_auth_is_masked_whatever_the_user(user: str) -> None:
    password = "correct-horse-battery-staple"
    header = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    masked = Redactor([password]).redact(header)
    decoded = base64.b64decode(masked.removeprefix("Basic ").split(MASK)[0] + "==", validate=False)
    assert MASK in masked
    assert b"horse-battery" not in decoded
    assert base64.b64encode(f"{user}:{password}".encode()).decode() not in masked


def test_the_forms_of_a_plain_token_are_few_and_never_empty() -> None:
    forms = secret_forms("abc")
    assert forms == {"abc"}
    assert "" not in secret_forms(" ")


class _Request(BaseModel):
    url: str
    timeout: int


def test_a_validation_error_lists_locations_and_messages_never_the_input() -> None:
    token = "s3cr3t-" + "x" * 60 + "-TAIL-of-the-token"
    with pytest.raises(ValidationError) as caught:
        _Request.model_validate({"url": 5, "timeout": token})
    assert "-TAIL-of-the-token" in str(caught.value), "pydantic quotes the tail of the input"

    text = describe_validation_error(caught.value)
    assert "TAIL-of-the-token" not in text and "input_value" not in text
    assert "errors.pydantic.dev" not in text
    assert text.startswith("2 validation errors: url: Input should be a valid string; timeout:")


def test_the_registry_masks_every_value_it_was_given_until_it_expires() -> None:
    registry = SecretRegistry(ttl=3600, limit=2)
    assert registry.pattern() is None
    registry.add("first-value")
    registry.add("daemon-token", permanent=True)
    assert registry.redact("a first-value b daemon-token") == "a *** b ***"
    registry.add("second-value")
    registry.add("third-value")  # over the limit: the oldest run value goes
    assert registry.redact("first-value second-value") == "first-value ***"
    assert registry.redact("daemon-token") == MASK, "the daemon's own secrets never expire"


def test_a_run_redactor_registers_its_values_with_the_process_registry() -> None:
    registry = SecretRegistry()
    Redactor(["run-secret-value"], registry=registry)
    assert registry.redact(f"GET /{quote('run-secret-value')}") == f"GET /{MASK}"


def test_a_very_short_value_is_masked_in_its_run_but_not_in_every_log_line() -> None:
    registry = SecretRegistry()
    run = Redactor(["ab", "long-enough"], registry=registry)
    assert run.redact("ab long-enough") == f"{MASK} {MASK}"
    assert registry.redact("git_executable long-enough") == f"git_executable {MASK}"
