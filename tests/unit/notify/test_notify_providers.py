"""Each provider's request, built without I/O (reconciler/notify/providers.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from reconciler.config.notifications import EventType, ProviderSpec
from reconciler.notify.events import Event
from reconciler.notify.providers import Message, build_request, commit_state, sign

SHA = "0123456789abcdef0123456789abcdef01234567"


def spec(**values: Any) -> ProviderSpec:
    return ProviderSpec.model_validate(values)


def message(kind: EventType = EventType.RUN_FAILED, revision: str | None = SHA) -> Message:
    return Message(
        Event(kind, "app", revision, status="Degraded"), "app <failed> & more", "https://r/#app"
    )


def test_hmac_signature_covers_timestamp_and_body() -> None:
    body = b'{"a":1}'
    expected = hmac.new(b"key", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("key", timestamp="1700000000", body=body) == f"sha256={expected}"
    assert sign("key", timestamp="1700000001", body=body) != sign(
        "key", timestamp="1700000000", body=body
    )


def test_webhook_sends_the_event_signed_with_a_timestamp() -> None:
    out = build_request(
        spec(type="webhook", address="https://hooks.example.com/r", secretRef="env:K"),
        message(),
        secret="key",
        timestamp=1700000000,
    )
    assert out is not None
    assert out.headers["X-Reconciler-Timestamp"] == "1700000000"
    assert out.headers["X-Reconciler-Signature"] == sign(
        "key", timestamp="1700000000", body=out.body
    )
    doc = json.loads(out.body)
    assert doc["event"] == "run.failed" and doc["workflow"] == "app" and doc["revision"] == SHA


def test_slack_url_may_come_from_the_secret_and_text_is_escaped() -> None:
    out = build_request(
        spec(type="slack", secretRef="env:SLACK"),
        message(),
        secret="https://hooks.slack.com/services/T/B/C",
        timestamp=0,
    )
    assert out is not None and out.url == "https://hooks.slack.com/services/T/B/C"
    doc = json.loads(out.body)
    assert doc["text"] == "app &lt;failed&gt; &amp; more"
    assert doc["blocks"][0]["text"]["text"].endswith("<https://r/#app|app>")


def test_teams_sends_an_adaptive_card() -> None:
    out = build_request(
        spec(type="teams", address="https://prod.example.com/workflows/x"),
        message(),
        secret=None,
        timestamp=0,
    )
    assert out is not None
    doc = json.loads(out.body)
    attachment = doc["attachments"][0]
    assert doc["type"] == "message"
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["content"]["type"] == "AdaptiveCard"
    assert attachment["content"]["actions"][0]["url"] == "https://r/#app"


def test_github_commit_status_on_the_revision() -> None:
    out = build_request(
        spec(type="github", repository="acme/infra", secretRef="env:GH"),
        message(),
        secret="tok",
        timestamp=0,
    )
    assert out is not None
    assert out.url == f"https://api.github.com/repos/acme/infra/statuses/{SHA}"
    assert out.headers["Authorization"] == "Bearer tok"
    doc = json.loads(out.body)
    assert doc == {
        "state": "failure",
        "description": "app <failed> & more",
        "context": "reconciler/app",
        "target_url": "https://r/#app",
    }


def test_github_enterprise_base_url_and_long_descriptions() -> None:
    long = Message(Event(EventType.RUN_SUCCEEDED, "app", SHA), "x" * 500)
    out = build_request(
        spec(
            type="github",
            repository="a/b",
            secretRef="env:GH",
            address="https://ghe.example.com/api/v3/",
        ),
        long,
        secret="t",
        timestamp=0,
    )
    assert out is not None and out.url.startswith(
        "https://ghe.example.com/api/v3/repos/a/b/statuses/"
    )
    assert len(json.loads(out.body)["description"]) == 140


def test_gitlab_commit_status_encodes_the_project_path() -> None:
    out = build_request(
        spec(type="gitlab", repository="group/sub/project", secretRef="env:GL"),
        message(EventType.RUN_STARTED),
        secret="tok",
        timestamp=0,
    )
    assert out is not None
    assert out.url == f"https://gitlab.com/api/v4/projects/group%2Fsub%2Fproject/statuses/{SHA}"
    assert out.headers["PRIVATE-TOKEN"] == "tok"
    assert json.loads(out.body)["state"] == "running"


def test_commit_statuses_skip_events_without_a_state_and_non_commit_revisions() -> None:
    gh = spec(type="github", repository="a/b", secretRef="env:GH")
    assert build_request(gh, message(EventType.DRIFT_DETECTED), secret="t", timestamp=0) is None
    assert build_request(gh, message(revision="sha256:abcdef"), secret="t", timestamp=0) is None
    assert commit_state(EventType.RUN_STARTED) == "pending"
    assert commit_state(EventType.CONVERGED) == "success"
