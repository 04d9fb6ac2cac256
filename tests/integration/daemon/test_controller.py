"""The controller in-process on real git repositories, a real SQLite store and real files.

Each test commits workflows to a repository in ``tmp_path``, runs :class:`Controller` until the
expected status shows up in the store, and checks what happened on disk and in the run history.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from structlog.testing import capture_logs

from reconciler.daemon.policy import UNRESTRICTED_PLUGINS_WARNING
from reconciler.daemon.queue import Reason
from reconciler.engine.journal import EventKind, RunRecord, RunStatus
from reconciler.store import Health, Store, WorkflowStatusRecord
from tests.support import postgres
from tests.support.controller import eventually, running
from tests.support.logs import every_log_line
from tests.support.repos import commit
from tests.support.waiting import until_async
from tests.support.workflows import file_workflow as keeps_file

pytestmark = pytest.mark.timeout(60)


def file_workflow(
    name: str, target: Path, content: str, *, states: dict[str, Any] | None = None, **spec: Any
) -> dict[str, Any]:
    """A workflow keeping ``target`` at ``content``, with other ``states`` or more ``spec``."""
    document = keeps_file(name, target, content, keep=True)
    if states:
        document["spec"]["states"] = states
    document["spec"].update(spec)
    return document


def put(repo: Path, name: str, document: dict[str, Any]) -> None:
    (repo / f"{name}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))


def with_cleanup(document: dict[str, Any], marker: Path) -> None:
    """Give ``document`` an ``onDelete`` state that writes "bye" to ``marker``."""
    document["spec"]["states"]["cleanup"] = {
        "action": {"plugin": "file.write", "with": {"path": str(marker), "content": "bye"}},
        "next": "done",
    }
    document["spec"]["onDelete"] = "cleanup"


async def gone(store: Store, name: str) -> bool:
    """Whether ``name`` has no status any more (the workflow was retired)."""
    return await store.get_status(name) is None


def converged_at(revision: str) -> Callable[[WorkflowStatusRecord], bool]:
    return lambda s: s.status is Health.CONVERGED and s.last_applied_revision == revision


async def test_removed_workflow_runs_its_on_delete_state_then_is_retired_keeping_history(
    tmp_path: Path, repo: Path
) -> None:
    target, marker = tmp_path / "motd", tmp_path / "motd.deleted"
    doc = file_workflow("motd", target, "hi")
    with_cleanup(doc, marker)
    put(repo, "motd", doc)
    first = commit(repo)
    async with running(tmp_path, repo) as (_controller, store):
        await eventually(store, "motd", converged_at(first))
        (repo / "motd.yaml").unlink()
        commit(repo, "remove motd")
        await until_async(lambda: gone(store, "motd"), 20, "motd to be retired")
        runs = await store.list_runs("motd")
    assert marker.read_text() == "bye"
    assert sorted(r.reason for r in runs) == ["delete", "drift"]
    assert all(r.status is RunStatus.SUCCEEDED for r in runs)


async def test_file_that_stops_parsing_marks_its_workflow_invalid_instead_of_deleting_it(
    tmp_path: Path, repo: Path
) -> None:
    marker = tmp_path / "deleted"
    doc = file_workflow("motd", tmp_path / "motd", "hi")
    with_cleanup(doc, marker)
    put(repo, "motd", doc)
    first = commit(repo)
    async with running(tmp_path, repo) as (_controller, store):
        await eventually(store, "motd", converged_at(first))
        (repo / "motd.yaml").write_text("apiVersion: [unclosed\n")
        commit(repo, "break the YAML")
        status = await eventually(store, "motd", lambda s: s.status is Health.INVALID)
    assert status.message.startswith("motd.yaml:")
    assert status.last_applied_revision == first
    assert not marker.exists(), "a parse error is not a removal: onDelete must not run"


async def test_failed_run_is_degraded_with_a_backoff_before_the_retry(
    tmp_path: Path, repo: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory is needed")
    doc = file_workflow("broken", tmp_path / "motd", "hi")
    doc["spec"]["states"]["write"]["action"]["with"]["path"] = str(blocker / "motd")
    put(repo, "broken", doc)
    first = commit(repo)
    async with running(tmp_path, repo) as (controller, store):
        status = await eventually(store, "broken", lambda s: s.status is Health.DEGRADED)
        assert controller.queue.failures("broken") == 1
        next_due = controller.queue.next_due()
        runs = await store.list_runs("broken")
    assert status.reason == "RunFailed"
    assert status.failures == 1
    assert status.last_attempted_revision == first
    assert status.last_applied_revision is None
    assert next_due is not None and next_due > 5, "the retry waits for the 10 s back-off"
    assert len(runs) == 1 and runs[0].status is RunStatus.FAILED


def config_then_restart(target: Path, *, restart_works_when: Path) -> dict[str, Any]:
    """A workflow that writes a config file, then "restarts a service": the restart fails (with
    systemctl's message on stderr) until ``restart_works_when`` exists. Its probe sees only the
    config, and checks every 100 ms."""
    doc = file_workflow("web", target, "listen 80", interval="100ms")
    doc["spec"]["states"]["write"]["next"] = "restart"
    doc["spec"]["states"]["restart"] = {
        "action": {
            "plugin": "shell.run",
            "with": {
                "shell": True,
                "command": f"test -f {restart_works_when} || {{ echo 'Job for web.service "
                "failed because the control process exited with error code.' >&2; exit 1; }",
            },
        },
        "next": "done",
        "onError": "failed",
    }
    return doc


async def test_failed_run_stays_degraded_while_its_probe_agrees_until_a_sync_succeeds(
    tmp_path: Path, repo: Path
) -> None:
    config, fixed = tmp_path / "web.conf", tmp_path / "restart-works"
    put(repo, "web", config_then_restart(config, restart_works_when=fixed))
    commit(repo)
    async with running(tmp_path, repo) as (controller, store):
        failed = await eventually(store, "web", lambda s: s.reason == "RunFailed")
        [run] = await store.list_runs("web")
        finished = run.finished_at
        assert finished is not None and config.read_text() == "listen 80"

        def checked_since_the_failure(s: WorkflowStatusRecord) -> bool:
            return s.observed_at is not None and s.observed_at > finished

        seen = await eventually(store, "web", checked_since_the_failure)
        assert failed.message.endswith(
            "/bin/sh exited with code 1: Job for web.service failed because the control process "
            "exited with error code."
        ), "the status says why, in the command's own words"
        assert seen.status is Health.DEGRADED
        assert seen.reason == "RunFailed"
        assert seen.message == failed.message
        assert seen.sync == "Synced", "sync says what the probe says"
        assert len(await store.list_runs("web")) == 1, "an in-sync probe starts no run by itself"

        fixed.touch()
        assert await controller.request_sync("web")
        done = await eventually(store, "web", lambda s: s.status is Health.CONVERGED)
        runs = await store.list_runs("web")
    assert done.reason == "RunSucceeded"
    assert [r.reason for r in runs] == ["manual", "drift"]
    assert [r.status for r in runs] == [RunStatus.SUCCEEDED, RunStatus.FAILED]


async def test_the_retry_of_a_failed_workflow_without_probe_is_a_retry_not_a_spec_change(
    tmp_path: Path, repo: Path
) -> None:
    ready = tmp_path / "ready"
    doc = config_then_restart(tmp_path / "web.conf", restart_works_when=ready)
    del doc["spec"]["observe"], doc["spec"]["desired"]
    doc["spec"]["interval"] = "1h"  # the back-off alone brings the retry
    put(repo, "web", doc)
    commit(repo)
    with every_log_line() as logs:
        async with running(tmp_path, repo) as (_controller, store):
            await eventually(store, "web", lambda s: s.reason == "RunFailed")
            ready.touch()  # the retry, after the 10 s back-off, succeeds
            await eventually(store, "web", lambda s: s.status is Health.CONVERGED, within=40)
            runs = await store.list_runs("web")
    assert [r.reason for r in runs] == ["retry", "spec-change"]
    starts = [e["event"] for e in logs if "starting run" in e["event"]]
    assert len(starts) == 2 and starts[1].endswith("(reason: retry)"), starts
    assert starts[1].startswith("workflow web: last attempt did not converge (Degraded)")


async def test_dependent_workflow_runs_only_after_its_dependency_converged(
    tmp_path: Path, repo: Path
) -> None:
    put(repo, "app", file_workflow("app", tmp_path / "app", "app", dependsOn=["database"]))
    put(repo, "database", file_workflow("database", tmp_path / "db", "db"))
    first = commit(repo)
    async with running(tmp_path, repo, max_concurrent_runs=4) as (_controller, store):
        await eventually(store, "app", converged_at(first))
        database = await store.get_status("database")
        app_runs = await store.list_runs("app")
        db_runs = await store.list_runs("database")
    assert database is not None and database.status is Health.CONVERGED
    assert db_runs[0].finished_at is not None
    assert app_runs[0].started_at >= db_runs[0].finished_at


async def test_periodic_drift_check_repairs_a_file_changed_behind_its_back(
    tmp_path: Path, repo: Path
) -> None:
    target = tmp_path / "motd"
    doc = file_workflow("motd", target, "hi")
    doc["spec"]["interval"] = "100ms"
    put(repo, "motd", doc)
    first = commit(repo)
    async with running(tmp_path, repo) as (_controller, store):
        await eventually(store, "motd", converged_at(first))
        target.write_text("tampered")
        await until_async(lambda: target.read_text() == "hi", 20, "the drift to be repaired")
        await eventually(store, "motd", lambda s: s.status is Health.CONVERGED)
        runs = await store.list_runs("motd")
    assert [r.reason for r in runs] == ["drift", "drift"]


async def test_manual_sync_runs_a_workflow_that_is_in_sync(tmp_path: Path, repo: Path) -> None:
    put(repo, "motd", file_workflow("motd", tmp_path / "motd", "hi"))
    first = commit(repo)
    async with running(tmp_path, repo) as (controller, store):
        converged = await eventually(store, "motd", converged_at(first))
        assert converged.next_check_at is not None, "the hourly drift check is scheduled"
        assert 50 * 60 < (converged.next_check_at - converged.updated_at).total_seconds() <= 3600
        assert await controller.request_sync("motd")
        assert not await controller.request_sync("no-such-workflow")

        async def second_run_finished() -> list[RunRecord] | None:
            runs = await store.list_runs("motd")
            return runs if len(runs) >= 2 and runs[0].status.finished else None

        runs = await until_async(second_run_finished, 20, "a second run of motd to finish")
    assert runs[0].reason == "manual"


async def test_keep_runs_holds_between_prune_passes_as_each_run_ends(
    tmp_path: Path, repo: Path
) -> None:
    put(repo, "motd", file_workflow("motd", tmp_path / "motd", "hi"))
    commit(repo)
    async with running(tmp_path, repo, keep_runs=2) as (controller, store):
        await eventually(store, "motd", lambda s: s.status is Health.CONVERGED)
        started = [r.id for r in await store.list_runs("motd")]
        for _ in range(4):
            assert await controller.request_sync("motd")

            async def next_run_settled(known: list[str] = started) -> str | None:
                status = await store.get_status("motd")
                last = status.last_run_id if status is not None else None
                done = status is not None and status.status is Health.CONVERGED
                return last if done and last not in known else None

            started.append(await until_async(next_run_settled, 20, "the manual run to settle"))

        async def pruned() -> list[str] | None:
            kept = [r.id for r in await store.list_runs("motd")]
            return kept if len(kept) <= 2 else None

        # the workflow is pruned just after its status is stored; the hourly pass is far away
        kept = await until_async(pruned, 20, "the runs beyond --keep-runs 2 to be pruned")
    assert len(started) == 5
    assert kept == [started[-1], started[-2]]
    assert len(kept) == 2, "pruned right after each run, not only by the hourly pass"


async def test_plugin_not_allowed_by_the_daemon_makes_the_workflow_invalid(
    tmp_path: Path, repo: Path
) -> None:
    put(repo, "motd", file_workflow("motd", tmp_path / "motd", "hi"))
    commit(repo)
    async with running(tmp_path, repo, allow_plugins="file.read") as (_controller, store):
        status = await eventually(store, "motd", lambda s: s.status is Health.INVALID)
    assert "plugin 'file.write' is not allowed here" in status.message
    assert not (tmp_path / "motd").exists()


async def test_an_empty_plugin_policy_allows_no_plugin_and_says_which_setting(
    tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(repo, "motd", file_workflow("motd", tmp_path / "motd", "hi"))
    commit(repo)
    monkeypatch.setenv("RECONCILER_ALLOW_PLUGINS", "")
    async with running(tmp_path, repo) as (controller, store):
        assert controller.settings.allow_plugins == []
        status = await eventually(store, "motd", lambda s: s.status is Health.INVALID)
    assert "plugin 'file.read' is not allowed here" in status.message
    assert "RECONCILER_ALLOW_PLUGINS is set but empty" in status.message
    assert not (tmp_path / "motd").exists()


async def test_an_unset_plugin_policy_warns_at_start_that_shell_run_is_allowed(
    tmp_path: Path, repo: Path
) -> None:
    put(repo, "motd", file_workflow("motd", tmp_path / "motd", "hi"))
    commit(repo)
    with capture_logs() as logs:
        async with running(tmp_path, repo) as (_controller, store):
            await eventually(store, "motd", lambda s: s.status is Health.CONVERGED)
    warnings = [e["event"] for e in logs if e["log_level"] == "warning"]
    assert UNRESTRICTED_PLUGINS_WARNING in warnings
    assert "shell.run included" in UNRESTRICTED_PLUGINS_WARNING
    assert "--allow-plugins" in UNRESTRICTED_PLUGINS_WARNING


async def test_a_plugin_policy_starts_without_the_warning(tmp_path: Path, repo: Path) -> None:
    put(repo, "motd", file_workflow("motd", tmp_path / "motd", "hi"))
    commit(repo)
    with capture_logs() as logs:
        async with running(tmp_path, repo, allow_plugins="file.*") as (_controller, store):
            await eventually(store, "motd", lambda s: s.status is Health.CONVERGED)
    assert [e for e in logs if e["event"] == UNRESTRICTED_PLUGINS_WARNING] == []


async def test_run_interrupted_by_shutdown_resumes_in_its_state_on_the_next_start(
    tmp_path: Path, repo: Path
) -> None:
    first_file, second_file = tmp_path / "first", tmp_path / "second"
    states = {
        "write": {
            "action": {"plugin": "file.write", "with": {"path": str(first_file), "content": "1"}},
            "next": "wait",
        },
        "wait": {"transitions": [{"to": "finish", "after": "1500ms"}]},
        "finish": {
            "action": {
                "plugin": "file.write",
                "with": {"path": "${{ inputs.path }}", "content": "hi"},
            },
            "next": "done",
        },
        "done": {"end": "success"},
    }
    target = second_file
    put(repo, "slow", file_workflow("slow", target, "hi", states=states))
    commit(repo)
    with every_log_line() as logs:
        async with running(tmp_path, repo, grace_period="50ms") as (_controller, store):

            async def waiting() -> list[RunRecord] | None:
                runs = await store.list_runs("slow")
                return runs if runs and runs[0].current_state == "wait" else None

            runs = await until_async(waiting, 20, "the run to reach state wait")
            run_id = runs[0].id
    # Stopped with the run still waiting: it stays resumable, not cancelled — and the log
    # does not say it finished.
    events = [e["event"] for e in logs]
    assert f"run {run_id[:8]}… interrupted in state wait; it resumes on the next start" in events
    assert [
        e for e in logs if e["event"] == "run finished" and e.get("status") == "cancelled"
    ] == []
    store = await Store.open(None, data_dir=tmp_path / "data")
    try:
        interrupted = await store.get_run(run_id)
        assert interrupted is not None
        assert interrupted.status is RunStatus.RUNNING
        assert interrupted.current_state == "wait"
    finally:
        await store.close()
    assert not second_file.exists()

    async with running(tmp_path, repo) as (_controller, store):

        async def finished() -> RunRecord | None:
            run = await store.get_run(run_id)
            return run if run is not None and run.status.finished else None

        run = await until_async(finished, 20, "the resumed run to finish")
        entries = await store.entries(run_id)
        status = await eventually(store, "slow", lambda s: s.status is Health.CONVERGED)
    assert run.status is RunStatus.SUCCEEDED
    assert second_file.read_text() == "hi"
    assert [e.kind for e in entries].count(EventKind.RUN_RESUMED) == 1
    assert [e.state for e in entries if e.kind is EventKind.STATE_ENTERED][:2] == ["write", "wait"]
    assert status.last_run_id == run_id


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A store URL on the local PostgreSQL, in a schema of its own dropped afterwards."""
    with postgres.schema("daemon_test") as name:
        yield postgres.store_url(name)


@pytest.mark.postgres
async def test_daemon_on_postgresql_converges_and_reruns_only_the_changed_workflow(
    tmp_path: Path, repo: Path, postgres_url: str
) -> None:
    for name in ("alpha", "beta", "gamma"):
        put(repo, name, file_workflow(name, tmp_path / name, f"hello {name}"))
    first = commit(repo, "three workflows")
    async with running(tmp_path, repo, store=postgres_url) as (_controller, store):
        for name in ("alpha", "beta", "gamma"):
            await eventually(store, name, converged_at(first))
        put(repo, "beta", file_workflow("beta", tmp_path / "beta", "hello again"))
        second = commit(repo, "change beta")
        for name in ("alpha", "beta", "gamma"):
            await eventually(store, name, converged_at(second))
        runs = {n: len(await store.list_runs(n)) for n in ("alpha", "beta", "gamma")}
    assert runs == {"alpha": 1, "beta": 2, "gamma": 1}
    assert (tmp_path / "beta").read_text() == "hello again"


async def test_workflow_removed_while_the_daemon_was_stopped_is_retired_at_start(
    tmp_path: Path, repo: Path
) -> None:
    put(repo, "keep", file_workflow("keep", tmp_path / "keep", "k"))
    put(repo, "gone", file_workflow("gone", tmp_path / "gone", "g"))
    first = commit(repo)
    async with running(tmp_path, repo) as (_controller, store):
        await eventually(store, "keep", converged_at(first))
        await eventually(store, "gone", converged_at(first))
    (repo / "gone.yaml").unlink()
    second = commit(repo, "remove gone while stopped")
    async with running(tmp_path, repo) as (_controller, store):
        await eventually(store, "keep", converged_at(second))
        await until_async(lambda: gone(store, "gone"), 20, "gone to be retired")
        history = await store.list_runs("gone")
    assert len(history) == 1, "its run history is kept"


async def test_a_check_that_changed_nothing_is_in_the_store_after_a_graceful_stop(
    tmp_path: Path, repo: Path
) -> None:
    target = tmp_path / "motd"
    target.write_text("hi")
    put(repo, "motd", file_workflow("motd", target, "hi"))
    first = commit(repo)
    async with running(tmp_path, repo) as (controller, store):
        converged = await eventually(store, "motd", converged_at(first))
        controller.queue.add("motd", Reason.DRIFT_CHECK)

        async def rechecked() -> WorkflowStatusRecord | None:
            status = await controller.statuses.get("motd")
            return status if status != converged else None

        checked = await until_async(rechecked, 20, "the drift check")
        assert checked is not None and checked.observed_at != converged.observed_at
    async with await Store.open(None, data_dir=tmp_path / "data") as reopened:
        assert await reopened.get_status("motd") == checked
        assert await reopened.list_runs("motd") == []  # in sync from the start: never ran
