"""Provider and Alert documents: their models, and how the loader reports them."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.config.loader import load_text
from reconciler.config.notifications import AlertSpec, ProviderSpec
from reconciler.config.snapshot import Snapshot
from reconciler.daemon.target import unreadable_files

WORKFLOW = """\
apiVersion: reconciler/v1
kind: Workflow
metadata: {name: app}
spec:
  start: done
  states: {done: {end: success}}
"""

PROVIDERS = """\
apiVersion: reconciler/v1
kind: Provider
metadata: {name: chat}
spec:
  type: slack
  secretRef: env:RECONCILER_SECRET_SLACK
---
apiVersion: reconciler/v1
kind: Alert
metadata: {name: failures}
spec:
  providerRefs: [chat, missing]
  events: [run.failed]
---
apiVersion: reconciler/v1
kind: Alert
metadata: {name: all}
spec:
  providerRefs: [chat]
"""


def snapshot(**files: str) -> Snapshot:
    return Snapshot.from_files("r1", {p: load_text(t, path=p) for p, t in files.items()})


def test_providers_and_alerts_load_beside_workflows() -> None:
    snap = snapshot(**{"app.yaml": WORKFLOW, "notify.yaml": PROVIDERS})
    assert set(snap.workflows) == {"app"}
    assert set(snap.providers) == {"chat"}
    assert set(snap.alerts) == {"all"}


def test_an_alert_naming_an_unknown_provider_is_reported_at_the_reference() -> None:
    snap = snapshot(**{"notify.yaml": PROVIDERS})
    [problem] = snap.errors
    assert str(problem) == (
        "notify.yaml:12:24: alert 'failures': provider 'missing' is not defined; "
        "the alert is not used"
    )
    assert problem.document == "Alert/failures"


def test_a_bad_provider_is_invalid_and_leaves_workflows_of_its_file_alone() -> None:
    text = WORKFLOW + "---\n" + PROVIDERS.replace("type: slack", "type: pager")
    snap = snapshot(**{"mixed.yaml": text})
    assert set(snap.workflows) == {"app"} and snap.providers == {}
    messages = [str(p) for p in snap.errors]
    assert messages[0].startswith("mixed.yaml:12:9: spec.type: Input should be")
    assert any("provider 'chat' is invalid" in m for m in messages)
    assert snap.invalid == {}
    assert unreadable_files(snap) == {}  # not a broken file: the workflow keeps loading


def test_a_provider_name_defined_twice_is_used_nowhere() -> None:
    one = PROVIDERS.split("---")[0]
    snap = snapshot(**{"a.yaml": one, "b.yaml": one})
    assert snap.providers == {}
    assert [p.path for p in snap.errors] == ["a.yaml", "b.yaml"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "slack"}, "either `address` or `secretRef`"),
        ({"type": "slack", "address": "https://a", "secretRef": "env:X"}, "one of the two"),
        ({"type": "webhook"}, "needs `address`"),
        ({"type": "github", "repository": "a/b"}, "needs `secretRef`"),
        ({"type": "github", "repository": "ab", "secretRef": "env:X"}, "owner/name"),
        ({"type": "gitlab", "secretRef": "env:X"}, "needs `repository`"),
        ({"type": "slack", "secretRef": "hunter2"}, "should match pattern"),
    ],
)
def test_provider_spec_needs_what_its_type_needs(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ProviderSpec.model_validate(spec)


def test_alert_summary_placeholders_are_checked() -> None:
    with pytest.raises(ValidationError, match=r"unknown placeholder \{\{ secret \}\}"):
        AlertSpec.model_validate({"providerRefs": ["a"], "summary": "{{ secret }}"})
    with pytest.raises(ValidationError, match="Input should be"):
        AlertSpec.model_validate({"providerRefs": ["a"], "events": ["run.exploded"]})
