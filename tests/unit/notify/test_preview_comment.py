"""The preview comment: a hidden marker first (how it is found again), a Markdown table of the
workflows the ref adds, changes or removes, cells that cannot break the table or the page, and
never a secret value."""

from __future__ import annotations

from reconciler.notify.previews import MARKER, render_comment, status_description, status_state
from reconciler.previews import Change, PreviewReport, WorkflowPreview
from reconciler.secrets.redaction import register_secret


def report(*workflows: WorkflowPreview, problems: list[str] | None = None) -> PreviewReport:
    return PreviewReport(
        ref="feature",
        revision="a" * 40,
        base="b" * 40,
        workflows=list(workflows),
        problems=problems or [],
        introduced=problems or [],
    )


def changed(name: str = "motd", **diff: object) -> WorkflowPreview:
    return WorkflowPreview(
        name=name,
        change=Change.CHANGED,
        would_run=True,
        reason=f"workflow {name} is out of sync",
        sync="OutOfSync",
        diff=[{"path": k, "desired": v, "observed": "old"} for k, v in diff.items()],
    )


def test_comment_starts_with_the_marker_and_has_one_row_per_changed_workflow() -> None:
    unchanged = WorkflowPreview(name="quiet", change=Change.UNCHANGED, reason="unchanged")
    text = render_comment(report(changed("motd", content="new"), unchanged))
    assert text.startswith(MARKER + "\n")
    rows = [line for line in text.splitlines() if line.startswith("| motd")]
    assert rows == ["| motd | changed | yes | workflow motd is out of sync | content: old → new |"]
    assert "quiet" not in text


def test_pipes_backticks_and_markup_in_values_are_escaped() -> None:
    text = render_comment(report(changed("motd", content="a|b `c` <script>\nnext")))
    row = next(line for line in text.splitlines() if line.startswith("| motd"))
    assert row.count(" | ") == 4, row  # five cells still
    assert "a\\|b \\`c\\` &lt;script&gt; next" in row
    assert "<script>" not in text


def test_a_registered_secret_never_appears_in_the_comment() -> None:
    secret = "hunter2-preview-secret-91f3"
    register_secret(secret)
    text = render_comment(
        report(changed("motd", password=f"user:{secret}"), problems=[f"x.yaml:1:2: {secret}"])
    )
    assert secret not in text and "***" in text


def test_invalid_workflows_fail_and_are_shown_with_their_position() -> None:
    bad = WorkflowPreview(
        name="broken", change=Change.NEW, problems=["broken.yaml:3:5: unknown plugin no.such"]
    )
    r = report(bad, problems=["broken.yaml:3:5: unknown plugin no.such"])
    text = render_comment(r)
    assert "| broken | new | invalid |" in text and "broken.yaml:3:5" in text
    assert status_state(r) == "failure" and "problems found" in text


def test_a_workflow_that_would_run_is_no_failure() -> None:
    r = report(changed("motd", content="new"))
    assert status_state(r) == "success" and status_state(None) == "pending"
    assert status_description(r) == "1 workflows changed, 1 would run"


def test_nothing_changed_says_so() -> None:
    assert "No workflow is added, changed or removed" in render_comment(report())
