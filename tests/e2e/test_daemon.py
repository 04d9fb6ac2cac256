"""`reconciler run` as a real process on a real git repository, stopped with SIGTERM.

A repository of three workflows (each keeps one file's content) is committed in ``tmp_path``;
the daemon must converge all three, and a later commit that changes one workflow must run that
workflow only. Statuses and runs are read from the daemon's own SQLite store.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from reconciler.clock import utcnow
from reconciler.engine.journal import EventKind, JournalEntry, RunRecord, RunStatus
from reconciler.store import Health, Store, WorkflowStatusRecord
from tests.support.daemon import CLI, DaemonProcess, spawn, start, statuses, without_settings
from tests.support.repos import commit, git
from tests.support.waiting import until, until_async
from tests.support.workflows import file_workflow, put

ANY_PORT = {"RECONCILER_LISTEN": "127.0.0.1:0"}
"""The API on any free port: daemons never clash."""

pytestmark = pytest.mark.timeout(90)


def write_workflow(repo: Path, out: Path, name: str, content: str) -> None:
    """``name`` keeps ``out / "<name>.txt"`` at ``content``."""
    put(repo, file_workflow(name, out / f"{name}.txt", content, keep=True))


@pytest.fixture
def daemon(tmp_path: Path, repo: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Start the daemon once the test has committed; killed at teardown if still running."""
    started: list[DaemonProcess] = []

    def start_daemon(*extra: str) -> DaemonProcess:
        process = start(
            repo,
            tmp_path / "data",
            "--poll-interval",
            "500ms",
            "--grace-period",
            "5s",
            *extra,
            cwd=tmp_path,
            log=tmp_path / "daemon.log",
            env=ANY_PORT,
        )
        started.append(process)
        return process

    yield start_daemon
    for process in started:
        process.kill()


async def runs_by_workflow(data_dir: Path) -> dict[str, list[str]]:
    store = await Store.open(None, data_dir=data_dir)
    try:
        out: dict[str, list[str]] = {}
        for run in await store.list_runs(limit=1000):
            out.setdefault(run.workflow, []).append(run.reason)
        return out
    finally:
        await store.close()


async def wait_converged(
    data_dir: Path, names: set[str], revision: str
) -> dict[str, WorkflowStatusRecord]:

    async def converged() -> dict[str, WorkflowStatusRecord] | None:
        seen = await statuses(data_dir)
        done = all(
            n in seen
            and seen[n].status is Health.CONVERGED
            and seen[n].last_applied_revision == revision
            for n in names
        )
        return seen if done else None

    found = await until_async(converged, 30, f"{names} converged at {revision[:12]}", interval=0.1)
    assert found is not None
    return found


async def wait_status(
    data_dir: Path, name: str, health: Health, *, within: float = 30
) -> WorkflowStatusRecord:
    """The status of ``name`` once its health is ``health``."""

    async def reached() -> WorkflowStatusRecord | None:
        status = (await statuses(data_dir)).get(name)
        return status if status is not None and status.status is health else None

    found = await until_async(reached, within, f"{name} to be {health.value}", interval=0.1)
    assert found is not None
    return found


async def wait_run_in_state(data_dir: Path, name: str, state: str) -> RunRecord:
    """The newest run of ``name`` once it is in ``state``."""

    async def reached() -> RunRecord | None:
        store = await Store.open(None, data_dir=data_dir)
        try:
            runs = await store.list_runs(name)
        finally:
            await store.close()
        return runs[0] if runs and runs[0].current_state == state else None

    found = await until_async(reached, 30, f"a run of {name} in state {state}", interval=0.05)
    assert found is not None
    return found


async def test_daemon_converges_three_workflows_and_a_commit_runs_only_the_changed_one(
    tmp_path: Path, repo: Path, daemon: Callable[..., DaemonProcess]
) -> None:
    out = tmp_path / "out"
    for name in ("alpha", "beta", "gamma"):
        write_workflow(repo, out, name, f"hello {name}")
    first = commit(repo, "three workflows")
    data_dir = tmp_path / "data"

    proc = daemon()
    await wait_converged(data_dir, {"alpha", "beta", "gamma"}, first)
    assert (out / "alpha.txt").read_text() == "hello alpha"
    assert (out / "beta.txt").read_text() == "hello beta"
    assert (out / "gamma.txt").read_text() == "hello gamma"
    assert await runs_by_workflow(data_dir) == {
        "alpha": ["drift"],
        "beta": ["drift"],
        "gamma": ["drift"],
    }

    write_workflow(repo, out, "beta", "hello again")
    second = commit(repo, "change beta")
    final = await wait_converged(data_dir, {"alpha", "beta", "gamma"}, second)
    assert (out / "beta.txt").read_text() == "hello again"
    runs = await runs_by_workflow(data_dir)
    assert runs == {"alpha": ["drift"], "beta": ["drift", "drift"], "gamma": ["drift"]}
    assert final["alpha"].reason == "InSync"
    assert final["beta"].reason == "RunSucceeded"

    assert proc.stop() == 0

    messages = [str(e.get("event")) for e in proc.events()]
    assert any(
        m.startswith("workflow beta is out of sync (content differs); starting run")
        and m.endswith("(reason: drift)")
        for m in messages
    ), messages
    assert "stopped" in messages


async def test_daemon_marks_a_broken_file_invalid_and_keeps_its_last_good_status(
    tmp_path: Path, repo: Path, daemon: Callable[..., DaemonProcess]
) -> None:
    out = tmp_path / "out"
    write_workflow(repo, out, "alpha", "hello alpha")
    first = commit(repo, "alpha")
    data_dir = tmp_path / "data"
    proc = daemon()
    await wait_converged(data_dir, {"alpha"}, first)

    text = (repo / "alpha.yaml").read_text().replace("next: done", "next: nowhere")
    (repo / "alpha.yaml").write_text(text.replace("hello alpha", "broken"))
    commit(repo, "break alpha")
    status = await wait_status(data_dir, "alpha", Health.INVALID)
    assert status.message.startswith("alpha.yaml:")
    assert "nowhere" in status.message
    assert status.last_applied_revision == first
    assert (out / "alpha.txt").read_text() == "hello alpha", "the broken spec must not run"

    assert proc.stop() == 0


PROJECT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(
    not (PROJECT / "examples" / "quickstart").is_dir(), reason="not in the project checkout"
)
async def test_daemon_without_a_repository_serves_the_quickstart_in_the_checkout(
    tmp_path: Path,
) -> None:
    data_dir, workdir = tmp_path / "data", tmp_path / "work"
    workdir.mkdir()
    proc = spawn(
        ["run", "--data-dir", str(data_dir), "--workdir", str(workdir)],
        cwd=PROJECT,
        log=tmp_path / "daemon.log",
        env=ANY_PORT,
    )
    try:
        proc.wait_started()
        for name in ("motd", "app-config", "disk-report", "daemon-probe"):
            await wait_status(data_dir, name, Health.CONVERGED)
    finally:
        code = proc.stop()
    assert code == 0
    started = [e for e in proc.events() if str(e.get("event", "")).startswith("reconciler started")]
    assert started and str(PROJECT / "examples" / "quickstart") in str(started[0]["event"])
    # the outputs land under the workdir, outside the data directory workflows cannot reach
    assert (workdir / "quickstart-out" / "motd").is_file()
    assert (workdir / "quickstart-out" / "disk-report.txt").is_file()
    assert (workdir / "quickstart-out" / "app-config" / "prod" / "app.ini").is_file()


def test_bad_setting_in_the_config_file_exits_2_with_one_clear_line(tmp_path: Path) -> None:
    config = tmp_path / "reconciler.toml"
    config.write_text('max-concurrent-runs = "many"\n')
    env = without_settings()
    result = subprocess.run(
        [*CLI, "run", "--config", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert result.returncode == 2
    assert "max-concurrent-runs" in result.stderr
    assert str(config) in result.stderr
    assert "Traceback" not in result.stderr


SLOW = """\
apiVersion: reconciler/v1
kind: Workflow
metadata:
  name: slow
spec:
  start: first
  states:
    first:
      action:
        plugin: file.write
        with: {{path: "{first}", content: "1"}}
      next: wait
    wait:
      transitions:
        - {{to: second, after: 2s}}
    second:
      action:
        plugin: file.write
        with: {{path: "{second}", content: "2"}}
      next: done
    done: {{end: success}}
"""


def commit_slow_workflow(tmp_path: Path, repo: Path) -> tuple[Path, Path]:
    """Commit ``slow`` (writes ``first``, waits 2 s in state ``wait``, writes ``second``)."""
    first, second = tmp_path / "first", tmp_path / "second"
    (repo / "slow.yaml").write_text(SLOW.format(first=first, second=second))
    commit(repo, "slow workflow")
    return first, second


async def wait_finished_by(data_dir: Path, run: RunRecord) -> None:
    """Until ``slow`` has converged, and through ``run`` (resumed, not started again)."""
    status = await wait_status(data_dir, "slow", Health.CONVERGED, within=60)
    assert status.last_run_id == run.id


async def test_run_killed_mid_state_resumes_in_that_state_after_a_restart(
    tmp_path: Path, repo: Path, daemon: Callable[..., DaemonProcess]
) -> None:
    first, second = commit_slow_workflow(tmp_path, repo)
    data_dir = tmp_path / "data"

    proc = daemon()
    run = await wait_run_in_state(data_dir, "slow", "wait")
    proc.kill()  # a crash: no shutdown, no journal write
    assert first.read_text() == "1"
    assert not second.exists()

    restarted = daemon()
    await wait_finished_by(data_dir, run)
    assert second.read_text() == "2"
    store = await Store.open(None, data_dir=data_dir)
    try:
        all_runs = await store.list_runs("slow")
        kinds = [e.kind.value for e in await store.entries(run.id)]
    finally:
        await store.close()
    assert [r.id for r in all_runs] == [run.id], "the run was resumed, not started again"
    assert kinds.count("run_resumed") == 1
    assert restarted.stop() == 0


RENAMED = """\
apiVersion: reconciler/v1
kind: Workflow
metadata:
  name: renamed
spec:
  start: wait
  states:
    wait:
      transitions:
        - {{to: {then}, after: 2s}}
    {then}:
      action:
        plugin: file.write
        with: {{path: "{out}", content: "{then}"}}
      next: done
    done: {{end: success}}
"""


async def run_and_entries(data_dir: Path, run_id: str) -> tuple[RunRecord, list[JournalEntry]]:
    store = await Store.open(None, data_dir=data_dir)
    try:
        run = await store.get_run(run_id)
        entries = await store.entries(run_id)
    finally:
        await store.close()
    assert run is not None
    return run, entries


def states_entered(entries: list[JournalEntry]) -> list[str | None]:
    return [e.state for e in entries if e.kind is EventKind.STATE_ENTERED]


async def test_resumed_run_keeps_the_spec_it_started_with_and_the_new_revision_runs_after(
    tmp_path: Path, repo: Path, daemon: Callable[..., DaemonProcess]
) -> None:
    out, data_dir = tmp_path / "renamed.txt", tmp_path / "data"
    (repo / "renamed.yaml").write_text(RENAMED.format(then="b", out=out))
    first_revision = commit(repo, "renamed: wait, then b")

    proc = daemon()
    run = await wait_run_in_state(data_dir, "renamed", "wait")
    proc.kill()  # a crash: no shutdown, no journal write
    assert run.revision == first_revision and not out.exists()
    (repo / "renamed.yaml").write_text(RENAMED.format(then="c", out=out))
    second_revision = commit(repo, "renamed: state b is now c")

    restarted = daemon()
    status = (await wait_converged(data_dir, {"renamed"}, second_revision))["renamed"]
    assert restarted.stop() == 0

    resumed, resumed_entries = await run_and_entries(data_dir, run.id)
    assert resumed.status is RunStatus.SUCCEEDED, resumed.error
    assert resumed.revision == first_revision
    assert states_entered(resumed_entries) == ["wait", "wait", "b", "done"]
    assert [e.kind for e in resumed_entries].count(EventKind.RUN_RESUMED) == 1
    # then the new revision got a run of its own, with its own spec
    assert status.last_run_id is not None and status.last_run_id != run.id
    newer, newer_entries = await run_and_entries(data_dir, status.last_run_id)
    assert newer.status is RunStatus.SUCCEEDED and newer.revision == second_revision
    assert newer.reason == "spec-change"
    assert states_entered(newer_entries) == ["wait", "c", "done"]
    assert out.read_text() == "c"
    assert (await runs_by_workflow(data_dir))["renamed"] == ["spec-change", "spec-change"]


TIMER = """\
apiVersion: reconciler/v1
kind: Workflow
metadata:
  name: timer
spec:
  start: wait
  states:
    wait:
      transitions:
        - {to: done, after: 8s}
    done: {end: success}
"""
WAIT = 8.0
KILLED_AFTER = 4.0
"""Seconds of the wait spent before the kill: a timer that started again from zero would end
at least this long after the wait's end."""
LATENESS = 2.5
"""How late the wait may end after the later of its end and the run's resumption: under
``KILLED_AFTER`` (a restarted timer), and far more than firing and journaling take."""


async def test_a_wait_interrupted_by_a_crash_lasts_only_what_was_left_of_it(
    tmp_path: Path, repo: Path, daemon: Callable[..., DaemonProcess]
) -> None:
    (repo / "timer.yaml").write_text(TIMER)
    commit(repo, "timer: waits 8s")
    data_dir = tmp_path / "data"

    proc = daemon()
    run = await wait_run_in_state(data_dir, "timer", "wait")
    _, entries = await run_and_entries(data_dir, run.id)
    [entered] = [e.at for e in entries if e.kind is EventKind.STATE_ENTERED]
    # time passing is the test: part of the wait is spent before the crash
    until(lambda: utcnow() - entered >= timedelta(seconds=KILLED_AFTER), 30, "time in the wait")
    proc.kill()
    restarted = daemon()
    await wait_status(data_dir, "timer", Health.CONVERGED, within=60)
    assert restarted.stop() == 0

    finished, entries = await run_and_entries(data_dir, run.id)
    assert finished.status is RunStatus.SUCCEEDED
    [resumed_at] = [e.at for e in entries if e.kind is EventKind.RUN_RESUMED]
    [left] = [e for e in entries if e.kind is EventKind.TRANSITION]
    assert left.state == "wait" and left.detail["condition"] == "after"
    wait_over = entered + timedelta(seconds=WAIT)
    assert left.at >= wait_over, "the wait ended early"
    late = (left.at - max(wait_over, resumed_at)).total_seconds()
    assert late < LATENESS, f"the resumed wait ended {late:.1f}s after it should have"


CANARY_WORKFLOW = """\
apiVersion: reconciler/v1
kind: Workflow
metadata:
  name: canary
spec:
  secrets:
    token: env:H7_CANARY_TOKEN
  start: write
  states:
    write:
      action:
        plugin: file.write
        with: {{path: "{blocker}/${{{{ secrets.token }}}}", content: "${{{{ secrets.token }}}}"}}
      next: done
      onError: failed
    done: {{end: success}}
    failed: {{end: failure}}
"""


async def test_a_canary_secret_never_reaches_the_log_or_the_store(
    tmp_path: Path,
    repo: Path,
    daemon: Callable[..., DaemonProcess],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    canary = "canary-7f3a9c51e2d84b60"
    monkeypatch.setenv("H7_CANARY_TOKEN", canary)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory is needed: the write fails naming its path")
    (repo / "canary.yaml").write_text(CANARY_WORKFLOW.format(blocker=blocker))
    commit(repo, "canary")
    data_dir = tmp_path / "data"

    proc = daemon("--allow-env", "H7_CANARY_TOKEN")
    status = await wait_status(data_dir, "canary", Health.DEGRADED)
    assert status.reason == "RunFailed"
    assert "***" in status.message
    assert proc.stop() == 0

    log_text = (tmp_path / "daemon.log").read_text()
    assert "RunFailed" in log_text or "failed" in log_text
    assert canary not in log_text
    for file in data_dir.iterdir():
        if file.is_file():
            assert canary.encode() not in file.read_bytes(), f"canary found in {file.name}"


async def test_daemon_follows_a_remote_branch_and_sub_path_from_config_file_and_flags(
    tmp_path: Path,
) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "-q", "-b", "prod")
    (work / "ops").mkdir()
    out = tmp_path / "out"
    write_workflow(work / "ops", out, "alpha", "from prod")
    (work / "not-workflows.yaml").write_text("this: is not under the sub-path\n")
    revision = commit(work, "prod workflows")
    git(work, "push", "-q", f"file://{remote}", "prod")

    config = tmp_path / "reconciler.yaml"
    config.write_text(
        f"repo: file://{remote}\nbranch: does-not-exist\npath: ops\npoll-interval: 500ms\n"
    )
    data_dir = tmp_path / "data"
    proc = spawn(
        ["run", "--config", str(config), "--branch", "prod", "--data-dir", str(data_dir)],
        cwd=tmp_path,
        log=tmp_path / "daemon.log",
        env=ANY_PORT,
    )
    try:
        proc.wait_started()
        found = await wait_converged(data_dir, {"alpha"}, revision)
    finally:
        code = proc.stop()
    assert code == 0
    assert set(found) == {"alpha"}
    assert (out / "alpha.txt").read_text() == "from prod"


async def test_sigterm_waits_out_the_grace_period_exits_0_and_the_run_resumes_on_restart(
    tmp_path: Path, repo: Path, daemon: Callable[..., DaemonProcess]
) -> None:
    _, second = commit_slow_workflow(tmp_path, repo)
    data_dir = tmp_path / "data"

    proc = daemon("--grace-period", "200ms")
    run = await wait_run_in_state(data_dir, "slow", "wait")
    assert proc.stop() == 0
    messages = [str(e.get("event")) for e in proc.events()]
    assert any(m.startswith("grace period of 0.2s is over") for m in messages), messages
    assert any(
        m == f"run {run.id[:8]}… interrupted in state wait; it resumes on the next start"
        for m in messages
    ), messages

    restarted = daemon()
    await wait_finished_by(data_dir, run)
    assert second.read_text() == "2"
    assert restarted.stop() == 0
