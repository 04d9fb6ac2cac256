"""``reconciler plan`` / ``apply`` / ``test`` as users and CI run them: real subprocesses, real files."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reconciler.store import Health, Store, WorkflowStatusRecord
from tests.support.workflows import gated_workflow, put

REPO = Path(__file__).resolve().parents[2]
BROKEN = REPO / "tests/fixtures/broken_tree/broken"
QUICKSTART = REPO / "examples/quickstart"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def run_json(*args: str, cwd: Path) -> tuple[int, dict[str, Any]]:
    proc = run(*args, "--output", "json", cwd=cwd)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def write_workflow(path: Path, name: str, states: str, *, spec: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"""apiVersion: reconciler/v1
kind: Workflow
metadata: {{name: {name}}}
spec:
{spec}  start: {states.split(":", 1)[0].strip()}
  states:
{states}
"""
    )


def file_writer(path: Path, name: str, target: str, content: str, *, spec: str = "") -> None:
    write_workflow(
        path,
        name,
        f"""    write:
      action: {{plugin: file.write, with: {{path: "{target}", content: "{content}"}}}}
      next: done
      onError: failed
    done: {{end: success}}
    failed: {{end: failure}}
""",
        spec=spec,
    )


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {w["workflow"]: w for w in report["workflows"]}


def test_apply_runs_the_good_workflows_beside_broken_files(tmp_path: Path) -> None:
    shutil.copytree(BROKEN, tmp_path / "tree" / "broken")
    for i in range(5):
        file_writer(tmp_path / f"tree/good/g{i}.yaml", f"good-{i}", f"out/g{i}.txt", f"hello {i}")

    code, report = run_json("apply", "tree", cwd=tmp_path)

    assert code == 1  # broken files make the apply fail...
    results = by_name(report)
    assert {n: r["result"] for n, r in results.items()} == {
        f"good-{i}": "converged" for i in range(5)
    }  # ...but every good workflow ran
    for i in range(5):
        assert (tmp_path / f"out/g{i}.txt").read_text() == f"hello {i}"
    invalid_paths = {p["path"] for p in report["problems"] if p["severity"] == "error"}
    assert len(invalid_paths) == 11, invalid_paths


def test_second_apply_of_the_quickstart_changes_nothing(tmp_path: Path) -> None:
    shutil.copytree(QUICKSTART, tmp_path / "quickstart")

    code, first = run_json("apply", "quickstart", cwd=tmp_path)
    assert code == 0, first
    assert all(w["result"] in {"converged", "ok"} for w in first["workflows"]), first
    assert any(w["changed"] for w in first["workflows"])

    code, second = run_json("apply", "quickstart", cwd=tmp_path)
    assert code == 0, second
    assert [w["workflow"] for w in second["workflows"] if w["changed"]] == []


def test_plan_detailed_exitcode_is_0_on_a_converged_quickstart_with_its_history(
    tmp_path: Path,
) -> None:
    shutil.copytree(QUICKSTART, tmp_path / "quickstart")
    code, applied = run_json("apply", "quickstart", "--data-dir", "data", cwd=tmp_path)
    assert code == 0, applied

    code, planned = run_json(
        "plan", "quickstart", "--data-dir", "data", "--detailed-exitcode", cwd=tmp_path
    )
    assert code == 0, planned
    assert {w["result"] for w in planned["workflows"]} == {"ok"}
    assert planned["history"] is True and planned["withoutHistory"] == []

    # without history, the workflows without a probe would run, and the plan says why
    code, blind = run_json("plan", "quickstart", "--detailed-exitcode", cwd=tmp_path)
    assert code == 2
    assert blind["history"] is False
    assert blind["withoutHistory"] == ["app-config", "daemon-probe"]
    text = run("plan", "quickstart", cwd=tmp_path)
    assert "app-config, daemon-probe: no observe probe to compare with and no run history" in (
        " ".join(text.stdout.split())
    )


def test_apply_never_overwrites_the_status_a_daemon_wrote(tmp_path: Path) -> None:
    file_writer(tmp_path / "wf/conf.yaml", "conf", "conf.txt", "x")
    daemon_says = WorkflowStatusRecord(
        name="conf", status=Health.DEGRADED, reason="Retrying", last_attempted_revision="3f2a9c"
    )

    async def put() -> None:
        async with await Store.open(None, data_dir=tmp_path / "data") as store:
            await store.put_status(daemon_says)

    async def read() -> WorkflowStatusRecord | None:
        async with await Store.open(None, data_dir=tmp_path / "data") as store:
            return await store.get_status("conf")

    asyncio.run(put())
    code, applied = run_json("apply", "wf", "--data-dir", "data", cwd=tmp_path)
    assert code == 0, applied
    assert by_name(applied)["conf"]["result"] == "converged"
    assert asyncio.run(read()) == daemon_says, "a status a daemon wrote is the daemon's"


def test_plan_shows_the_field_diff_and_changes_nothing(tmp_path: Path) -> None:
    spec = """  observe: {plugin: file.read, with: {path: motd.txt, missingOk: true}}
  desired: {exists: true, content: "welcome\\n"}
"""
    file_writer(tmp_path / "wf/motd.yaml", "motd", "motd.txt", "welcome\\n", spec=spec)

    code, report = run_json("plan", "wf", cwd=tmp_path)
    assert code == 0
    motd = by_name(report)["motd"]
    assert motd["before"] == "OutOfSync" and motd["result"] == "would-run"
    assert {d["path"] for d in motd["diff"]} == {"exists", "content"}
    assert not (tmp_path / "motd.txt").exists()  # plan never changes anything
    assert run("plan", "wf", "--detailed-exitcode", cwd=tmp_path).returncode == 2

    code, applied = run_json("apply", "wf", cwd=tmp_path)
    assert code == 0 and by_name(applied)["motd"]["after"] == "Synced"
    code, again = run_json("plan", "wf", "--detailed-exitcode", cwd=tmp_path)
    assert code == 0 and by_name(again)["motd"]["before"] == "Synced"


def test_a_failed_run_fails_apply_and_skips_its_dependents(tmp_path: Path) -> None:
    write_workflow(
        tmp_path / "wf/breaks.yaml",
        "breaks",
        """    go:
      action: {plugin: shell.run, with: {argv: ["false"]}}
      next: done
      onError: failed
    done: {end: success}
    failed: {end: failure}
""",
    )
    file_writer(
        tmp_path / "wf/after.yaml",
        "after",
        "after.txt",
        "x",
        spec="  dependsOn: [breaks]\n",
    )

    code, report = run_json("apply", "wf", cwd=tmp_path)

    assert code == 1
    results = by_name(report)
    assert results["breaks"]["result"] == "failed"
    assert "CommandFailed" in results["breaks"]["message"]
    assert results["after"]["result"] == "skipped"
    assert "breaks" in results["after"]["message"]
    assert not (tmp_path / "after.txt").exists()


def test_apply_with_a_data_dir_keeps_the_runs_in_the_store(tmp_path: Path) -> None:
    file_writer(tmp_path / "wf/one.yaml", "one", "one.txt", "1")

    code, report = run_json("apply", "wf", "--data-dir", "state", cwd=tmp_path)
    assert code == 0
    run_id = by_name(report)["one"]["runId"]

    async def stored() -> tuple[str, list[str]]:
        async with await Store.open(None, data_dir=tmp_path / "state") as store:
            runs = await store.list_runs(workflow="one")
            entries = await store.entries(run_id)
            return runs[0].id, [e.kind.value for e in entries]

    stored_id, kinds = asyncio.run(stored())
    assert stored_id == run_id
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished" and "transition" in kinds


def test_inline_tests_of_every_example_pass(tmp_path: Path) -> None:
    proc = run("test", str(REPO / "examples"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 failed" in proc.stdout
    assert "FAIL" not in proc.stdout


def test_a_failing_inline_test_shows_the_path_taken(tmp_path: Path) -> None:
    file_writer(tmp_path / "wf/w.yaml", "w", "w.txt", "x")
    with (tmp_path / "wf/w.yaml").open("a") as f:
        f.write(
            """tests:
  - name: expects the wrong path
    mocks: {file.write: [{error: Conflict}]}
    expect: {path: [write, done], end: success}
"""
        )
    code, report = run_json("test", "wf", cwd=tmp_path)
    assert code == 1
    [result] = report["results"]
    assert result["passed"] is False
    assert result["path"] == ["write", "failed"]
    assert any("path: expected ['write', 'done']" in f for f in result["failures"])


def test_idempotence_catches_a_workflow_that_changes_something_every_run(tmp_path: Path) -> None:
    file_writer(tmp_path / "wf/stamp.yaml", "stamp", "stamp.txt", "run ${{ run.id }}")
    file_writer(tmp_path / "wf/steady.yaml", "steady", "steady.txt", "same every time")

    code, report = run_json("test", "--idempotence", "wf", cwd=tmp_path)

    assert code == 1
    results = {r["workflow"]: r for r in report["results"]}
    assert results["steady"]["passed"] is True
    assert results["stamp"]["passed"] is False
    assert results["stamp"]["failures"] == ["second run changed something: write: file.write #0"]
    assert not (tmp_path / "stamp.txt").exists()  # it ran in a scratch directory


def test_the_quickstart_is_idempotent(tmp_path: Path) -> None:
    proc = run("test", "--idempotence", str(QUICKSTART), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("command", ["validate", "plan", "apply", "test", "graph"])
@pytest.mark.parametrize("case", ["missing", "empty-dir", "binary"])
def test_bad_paths_get_one_clear_line_and_no_traceback(
    tmp_path: Path, command: str, case: str
) -> None:
    if case == "missing":
        target = "does-not-exist"
    elif case == "empty-dir":
        (tmp_path / "empty").mkdir()
        target = "empty"
    else:
        (tmp_path / "blob.yaml").write_bytes(b"\x00\x01\x02binary\xff\xfe")
        target = "blob.yaml"

    proc = run(command, target, cwd=tmp_path)

    assert proc.returncode != 0
    assert "Traceback" not in proc.stdout + proc.stderr
    said = proc.stdout + proc.stderr
    expected = {"missing": "does-not-exist", "empty-dir": "no workflow", "binary": "binary"}[case]
    assert expected in said, said


def test_approval_gates_pass_in_idempotence_and_follow_their_script_in_tests(
    tmp_path: Path,
) -> None:
    document = gated_workflow("gate", "gate.txt", "opened")
    document["tests"] = [
        {
            "name": "approved",
            "approvals": ["approve"],
            "mocks": {"file.write": [{"changed": True}]},
            "expect": {"path": ["ask", "write", "done"]},
        },
        {"name": "rejected", "approvals": ["reject"], "expect": {"path": ["ask", "rejected"]}},
    ]
    (tmp_path / "wf").mkdir()
    put(tmp_path / "wf", document)

    code, report = run_json("test", "wf", cwd=tmp_path)
    assert code == 0, report
    assert {r["test"]: r["passed"] for r in report["results"]} == {
        "approved": True,
        "rejected": True,
    }
    code, report = run_json("test", "--idempotence", "wf", cwd=tmp_path)
    assert code == 0, report
    [idempotence] = report["results"]
    assert idempotence["path"] == ["ask", "write", "done"]
    applied = run("apply", "wf", cwd=tmp_path)
    assert applied.returncode != 0
    assert "ApprovalUnavailable" in applied.stdout + applied.stderr
