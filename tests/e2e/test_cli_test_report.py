"""``reconciler test --junit`` and what ``test``/``apply`` print, as CI runs them: real
subprocesses over real workflow files, the report read back with ``xml.etree`` as a CI system
reads it."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

GATE = """\
apiVersion: reconciler/v1
kind: Workflow
metadata: {name: gate}
spec:
  start: write
  states:
    write:
      action: {plugin: file.write, with: {path: gate.txt, content: open}}
      next: done
      onError: failed
    done: {end: success}
    failed: {end: failure}
tests:
  - name: writes the gate
    mocks:
      file.write: [{changed: true, path: gate.txt, sha256: "0"}]
    expect: {path: [write, done], end: success}
  - name: a write error is routed to the failure end
    mocks:
      file.write: [{error: PermissionDenied, message: read-only file system}]
    expect: {path: [write, failed], end: failure}
  - name: a wrong expectation fails
    mocks:
      file.write: [{changed: true, path: gate.txt, sha256: "0"}]
    expect: {path: [write, failed], end: failure}
"""

UNTESTED = """\
apiVersion: reconciler/v1
kind: Workflow
metadata: {name: untested}
spec:
  start: done
  states:
    done: {end: success}
"""

INVALID = """\
apiVersion: reconciler/v1
kind: Workflow
metadata: {name: broken}
spec:
  start: go
  states:
    go: {action: {plugin: no.such.plugin, with: {}}, next: done}
    done: {end: success}
"""


def reconciler(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    folder = tmp_path / "workflows"
    folder.mkdir()
    (folder / "gate.yaml").write_text(GATE)
    (folder / "untested.yaml").write_text(UNTESTED)
    return folder


def test_junit_report_has_a_testcase_per_test_with_failures_and_counts(
    tree: Path, tmp_path: Path
) -> None:
    (tree / "broken.yaml").write_text(INVALID)
    report = tmp_path / "junit.xml"
    proc = reconciler("test", str(tree), "--junit", str(report), cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    root = ET.parse(report).getroot()
    assert root.tag == "testsuites"
    assert {k: root.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "5",
        "failures": "1",
        "errors": "1",
        "skipped": "1",
    }
    cases = {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}
    assert set(cases) == {
        ("gate", "writes the gate"),
        ("gate", "a write error is routed to the failure end"),
        ("gate", "a wrong expectation fails"),
        ("broken", "valid"),
        ("untested", "(no inline tests)"),
    }
    failure = cases[("gate", "a wrong expectation fails")].find("failure")
    assert failure is not None and "path" in (failure.get("message") or "")
    assert "write -> done" in (failure.text or "")
    error = cases[("broken", "valid")].find("error")
    assert error is not None and "no.such.plugin" in (error.get("message") or "")
    gate = next(s for s in root.iter("testsuite") if s.get("name") == "gate")
    assert (gate.get("tests"), gate.get("failures")) == ("3", "1")
    assert "FAIL gate / a wrong expectation fails" in proc.stdout


def test_a_report_that_cannot_be_written_is_one_line_and_exit_2(tree: Path, tmp_path: Path) -> None:
    proc = reconciler("test", str(tree), "--junit", str(tmp_path / "no" / "r.xml"), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: --junit ") and proc.stderr.count("\n") == 1


def test_mocked_errors_log_no_warning_and_json_output_is_one_document(
    tree: Path, tmp_path: Path
) -> None:
    proc = reconciler("test", str(tree), "-o", "json", cwd=tmp_path)
    assert proc.returncode == 1  # the wrong expectation
    report = json.loads(proc.stdout)
    assert report["summary"] == {"passed": 2, "failed": 1, "invalid": 0}
    assert "action failed" not in proc.stderr and proc.stderr == ""
    verbose = reconciler("-v", "test", str(tree), "-o", "json", cwd=tmp_path)
    assert "action failed" in verbose.stderr, "-v shows the log again"
    assert json.loads(verbose.stdout)["summary"] == report["summary"]


def test_apply_keeps_its_log_on_stderr_out_of_its_json(tmp_path: Path) -> None:
    (tmp_path / "gate").mkdir()  # file.write cannot write a directory: the run fails
    (tmp_path / "gate.yaml").write_text(GATE.replace("gate.txt", "gate"))
    proc = reconciler("apply", str(tmp_path / "gate.yaml"), "-o", "json", cwd=tmp_path)
    assert proc.returncode == 1
    outcome = json.loads(proc.stdout)["workflows"][0]
    assert (outcome["workflow"], outcome["result"]) == ("gate", "failed")
    assert "action failed" in proc.stderr
    assert all(line.startswith("{") for line in proc.stderr.splitlines())
