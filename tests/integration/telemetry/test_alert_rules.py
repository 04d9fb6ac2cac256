"""The alert rules file is valid for Prometheus and its promtool unit tests pass.

Runs Debian's ``promtool`` (package ``prometheus``, installed by ``.ci/run``) on
``charts/reconciler/files/alerts.yaml`` — the one rules file the Helm chart's PrometheusRule is
rendered from — and on ``tests/promtool/alerts_test.yaml``. Also checks what promtool does not:
every alert has a severity, a summary, a description and a runbook link to a section that
exists in ``docs/operations.md``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "charts" / "reconciler" / "files" / "alerts.yaml"
UNIT_TESTS = ROOT / "tests" / "promtool" / "alerts_test.yaml"
OPERATIONS = ROOT / "docs" / "operations.md"
RUNBOOK_PAGE = "https://github.com/reconciler/reconciler/blob/main/docs/operations.md"
"""Where the rules file's runbook links point (the chart's ``runbookBaseUrl`` can move them)."""
ALERTS = {
    "ReconcilerWorkflowFailing",
    "ReconcilerWorkflowProbeFailing",
    "ReconcilerDriftPersisting",
    "ReconcilerGitSyncStale",
    "ReconcilerGitSignatureRefused",
    "ReconcilerConfigInvalid",
    "ReconcilerSecretsFailing",
    "ReconcilerStoreUnhealthy",
    "ReconcilerAbsent",
}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        message = "promtool is not installed (apt-get install prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def rules() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


def test_promtool_accepts_the_rules_file() -> None:
    done = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in done.stdout


def test_promtool_unit_tests_pass_for_every_alert() -> None:
    done = subprocess.run(
        [promtool(), "test", "rules", UNIT_TESTS.name],
        cwd=UNIT_TESTS.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    tested = set(re.findall(r"alertname:\s*(\w+)", UNIT_TESTS.read_text()))
    assert tested == ALERTS, "every alert has a promtool test"


def test_every_alert_has_severity_summary_description_and_an_existing_runbook() -> None:
    anchors = {
        github_anchor(line.lstrip("#"))
        for line in OPERATIONS.read_text().splitlines()
        if line.startswith("#")
    }
    assert {r["alert"] for r in rules()} == ALERTS
    for rule in rules():
        labels, notes = rule["labels"], rule["annotations"]
        assert isinstance(labels, dict) and isinstance(notes, dict)
        assert labels["severity"] in ("warning", "critical"), rule["alert"]
        assert notes["summary"] and notes["description"], rule["alert"]
        assert rule.get("for"), f"{rule['alert']} fires on a single evaluation"
        page, _, anchor = str(notes["runbook_url"]).partition("#")
        assert page == RUNBOOK_PAGE, "absolute: Alertmanager and Slack cannot open a relative link"
        assert anchor in anchors, f"{rule['alert']}: no section #{anchor} in docs/operations.md"
