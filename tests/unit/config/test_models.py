from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.config.models import Workflow, parse_duration


def workflow(states: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "reconciler/v1",
        "kind": "Workflow",
        "metadata": {"name": "demo"},
        "spec": {"start": next(iter(states)), "states": states, **spec},
    }


def test_shorthands_normalise_to_do_and_transitions() -> None:
    wf = Workflow.model_validate(
        workflow(
            {
                "a": {
                    "action": {"plugin": "file.read", "with": {"path": "x"}},
                    "next": "ok",
                    "onError": "bad",
                },
                "ok": {"end": "success"},
                "bad": {"end": "failure"},
            }
        )
    )
    state = wf.spec.states["a"]
    assert [a.plugin for a in state.do] == ["file.read"]
    assert [(t.to, t.on) for t in state.transitions] == [("ok", ["success"]), ("bad", ["error"])]
    dumped = wf.model_dump(by_alias=True, exclude_none=True)["spec"]["states"]["a"]
    assert "next" not in dumped and "action" not in dumped


def test_transition_on_string_becomes_list_and_default_branch_has_kind_default() -> None:
    wf = Workflow.model_validate(
        workflow(
            {
                "a": {"transitions": [{"to": "b", "on": "Timeout"}, {"to": "b"}]},
                "b": {"end": "success"},
            }
        )
    )
    first, default = wf.spec.states["a"].transitions
    assert first.on == ["Timeout"] and first.kind == "on"
    assert default.kind == "default"


def test_transition_with_two_conditions_is_rejected() -> None:
    with pytest.raises(ValidationError, match="one condition"):
        Workflow.model_validate(
            workflow(
                {
                    "a": {"transitions": [{"to": "b", "on": "success", "after": "5s"}]},
                    "b": {"end": "success"},
                }
            )
        )


def test_end_state_cannot_have_actions() -> None:
    with pytest.raises(ValidationError, match="end state"):
        Workflow.model_validate(workflow({"a": {"end": "success", "do": [{"plugin": "x"}]}}))


def test_unknown_key_is_an_error() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        Workflow.model_validate(workflow({"a": {"end": "success", "nxet": "b"}}))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("30s", 30), ("5m", 300), ("1h30m", 5400), ("1d", 86400), (3, 3)],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["", "5", "5x", "m5", "-1s", True])
def test_bad_durations(bad: Any) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_metadata_name_must_be_dns_like() -> None:
    doc = workflow({"a": {"end": "success"}})
    doc["metadata"]["name"] = "Not_Valid"
    with pytest.raises(ValidationError, match="pattern"):
        Workflow.model_validate(doc)


def test_secret_reference_forms() -> None:
    ok = workflow(
        {"a": {"end": "success"}},
        secrets={
            "a": "vault:secret/data/x#pw",
            "b": "env:TOKEN",
            "c": "file:/run/s",
            "d": "transit:k:vault:v1:abc",
        },
    )
    assert len(Workflow.model_validate(ok).spec.secrets) == 4
    with pytest.raises(ValidationError):
        Workflow.model_validate(workflow({"a": {"end": "success"}}, secrets={"a": "hunter2"}))
