"""Alert filters and summary templates (reconciler/notify/alerts.py)."""

from __future__ import annotations

from typing import Any

from reconciler.config.notifications import AlertSpec, EventType
from reconciler.notify.alerts import fields, matches, render, workflow_url
from reconciler.notify.events import Event


def alert(**spec: Any) -> AlertSpec:
    return AlertSpec.model_validate({"providerRefs": ["chat"], **spec})


def event(
    kind: EventType = EventType.RUN_FAILED, workflow: str | None = "payments-db", **more: Any
) -> Event:
    return Event(kind, workflow, "0123456789abcdef0123", **more)


def test_an_alert_without_filters_takes_every_event() -> None:
    assert matches(alert(), event())
    assert matches(alert(), event(EventType.SOURCE_FAILING, workflow=None))


def test_event_types_filter() -> None:
    only = alert(events=["run.succeeded"])
    assert not matches(only, event(EventType.RUN_FAILED))
    assert matches(only, event(EventType.RUN_SUCCEEDED))


def test_workflow_globs_filter_and_leave_source_events_out() -> None:
    payments = alert(workflows=["payments-*"])
    assert matches(payments, event(workflow="payments-db"))
    assert not matches(payments, event(workflow="search"))
    assert not matches(payments, event(EventType.SOURCE_FAILING, workflow=None))


def test_labels_must_all_match() -> None:
    team = alert(labels={"team": "pay", "tier": "1"})
    assert matches(team, event(labels={"team": "pay", "tier": "1", "x": "y"}))
    assert not matches(team, event(labels={"team": "pay"}))


def test_severity_error_keeps_failures_only() -> None:
    errors = alert(severity="error")
    assert matches(errors, event(EventType.RUN_FAILED))
    assert not matches(errors, event(EventType.RUN_SUCCEEDED))


def test_a_suspended_alert_takes_nothing() -> None:
    assert not matches(alert(suspend=True), event())


def test_summary_renders_known_placeholders_only() -> None:
    values = fields(
        event(status="Degraded", message="state write failed"), url="https://r/#payments-db"
    )
    text = render("{{workflow}} {{ status }}: {{ message }} ({{ revision }}) {{ url }}", values)
    assert text == "payments-db Degraded: state write failed (0123456789ab) https://r/#payments-db"
    # no attribute access or formatting: the template is data, not code
    assert render("{workflow.__class__} {{ workflow.__class__ }}", values) == (
        "{workflow.__class__} {{ workflow.__class__ }}"
    )


def test_summary_is_cut_when_very_long() -> None:
    text = render("{{ message }}", {"message": "x" * 10_000})
    assert len(text) == 3000 and text.endswith("…")


def test_workflow_link_follows_the_external_url() -> None:
    assert workflow_url(None, "app") == ""
    assert (
        workflow_url("https://reconciler.example.com/", "app")
        == "https://reconciler.example.com/#app"
    )
    assert workflow_url("https://r.example.com", None) == "https://r.example.com/"
