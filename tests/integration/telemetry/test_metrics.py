"""``/metrics`` after real runs through a real Controller: every metric of docs/operations.md, right values.

Each test commits workflows to a git repository in ``tmp_path`` — one that converges, one whose
action times out (and is retried), one whose secret is missing, one file that does not load —
runs the controller until their statuses settle and reads the exposition of
:data:`~reconciler.telemetry.metrics.REGISTRY` (what the API serves on ``/metrics``). The
registry is process-wide, so workflow names carry a per-test suffix and counters shared with
other tests (by plugin, by secret provider) are compared with their value before the test.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import pytest

from reconciler import __version__
from reconciler.config.loader import load_text
from reconciler.daemon.planner import Reason
from reconciler.errors import ActionError
from reconciler.plugin import PluginRegistry
from reconciler.store import Health
from reconciler.telemetry.metrics import (
    NOTIFICATION_OUTCOMES,
    RUN_RESULTS,
    SECRET_PROVIDERS,
    SECRET_REASONS,
)
from tests.integration.telemetry.harness import (
    exposition,
    failing_workflow,
    file_workflow,
    put,
    series,
    until,
    value,
    workflow,
)
from tests.support.controller import eventually, running
from tests.support.repos import commit, init_repo

pytestmark = pytest.mark.timeout(90)

BROKEN_YAML = """\
apiVersion: reconciler/v1
kind: Workflow
metadata:
  name: {name}
spec:
  states:
    done: {{end: success}}
"""


def secret_workflow(name: str, variable: str) -> dict[str, object]:
    return workflow(name, {"done": {"end": "success"}}, start="done", secrets={"token": variable})


def counter(name: str, **labels: str) -> float:
    return value(name, **labels) or 0.0


async def test_exposition_after_real_runs_shows_every_named_metric_with_the_right_values(
    tmp_path: Path,
) -> None:
    uid = uuid.uuid4().hex[:8]
    ok, bad, secret, broken = (f"{w}-{uid}" for w in ("ok", "bad", "secret", "broken"))
    repo = init_repo(tmp_path / "repo")
    target = tmp_path / "motd"
    put(repo, ok, file_workflow(ok, target, "hello"))
    put(repo, bad, failing_workflow(bad))
    put(repo, secret, secret_workflow(secret, f"env:RECONCILER_SECRET_TEST_UNSET_{uid.upper()}"))
    (repo / f"{broken}.yaml").write_text(BROKEN_YAML.format(name=broken))
    first = commit(repo)
    errors_in_broken = len(load_text(BROKEN_YAML.format(name=broken), path="x").problems)
    assert errors_in_broken >= 1

    before = {
        "write": counter(
            "reconciler_action_duration_seconds_count", plugin="file.write", result="success"
        ),
        "timeouts": counter(
            "reconciler_action_duration_seconds_count", plugin="shell.run", result="Timeout"
        ),
        "retries": counter("reconciler_action_retries_total", plugin="shell.run"),
        "secrets": counter("reconciler_secret_errors_total", provider="env", reason="missing"),
    }
    started = time.time()
    # The gauge is the process's: an earlier test's controller that stopped mid-run (its run
    # resumes at the next start, which never comes in a test) left its run counted.
    in_progress = value("reconciler_runs_in_progress") or 0
    # one worker: while bad's run (two 100 ms timeouts) goes on, the others wait in the queue
    async with running(tmp_path, repo, max_concurrent_runs=1) as (controller, store):
        await until(
            lambda: (value("reconciler_runs_in_progress") or 0) == in_progress + 1,
            "a run going on",
        )
        await until(lambda: (value("reconciler_queue_depth") or 0) >= 1, "workflows queued")
        ok_status = await eventually(store, ok, lambda s: s.status is Health.CONVERGED)
        await eventually(store, bad, lambda s: s.status is Health.DEGRADED)
        await eventually(store, secret, lambda s: s.status is Health.DEGRADED)
        await eventually(store, broken, lambda s: s.status is Health.INVALID)
        await until(lambda: not controller.queue.processing, "workers idle")

        assert value("reconciler_build_info", version=__version__) == 1
        assert value("process_cpu_seconds_total") is not None, "default process collector"
        assert series("python_info"), "default platform collector"

        # statuses: 1 for the current one, 0 for the others
        for name, health in [
            (ok, Health.CONVERGED),
            (bad, Health.DEGRADED),
            (secret, Health.DEGRADED),
            (broken, Health.INVALID),
        ]:
            assert value("reconciler_workflow_status", workflow=name, status=health.value) == 1
            assert all(
                value("reconciler_workflow_status", workflow=name, status=other.value) == 0
                for other in Health
                if other not in (health, Health.RETIRED)
            )
        assert value("reconciler_workflow_in_sync", workflow=ok) == 1
        assert value("reconciler_workflow_in_sync", workflow=bad) is None, "no probe: unknown"
        # why each has its status: one series per workflow, the reason the status row gives
        for name in (ok, bad, secret, broken):
            stored = await store.get_status(name)
            assert stored is not None
            assert series("reconciler_workflow_reason", workflow=name) == [
                {"workflow": name, "reason": stored.reason}
            ]
        assert series("reconciler_workflow_reason", workflow=bad)[0]["reason"] == "RunFailed"
        assert series("reconciler_workflow_reason", workflow=broken)[0]["reason"] == "InvalidSpec"

        last_success = value("reconciler_workflow_last_success_timestamp_seconds", workflow=ok)
        assert ok_status.last_success_at is not None
        assert last_success == pytest.approx(ok_status.last_success_at.timestamp())
        assert started - 1 <= (last_success or 0) <= time.time()
        assert value("reconciler_workflow_last_success_timestamp_seconds", workflow=bad) is None

        bad_runs = value("reconciler_runs_total", workflow=bad, result="failed") or 0
        assert bad_runs >= 1
        assert value("reconciler_runs_total", workflow=bad, result="succeeded") == 0
        assert value("reconciler_runs_total", workflow=ok, result="succeeded") == 1
        assert value("reconciler_runs_total", workflow=ok, result="failed") == 0
        assert counter("reconciler_runs_total", workflow=secret, result="failed") >= 1
        assert value("reconciler_run_duration_seconds_count", workflow=ok) == 1
        assert value("reconciler_run_duration_seconds_count", workflow=bad) == bad_runs
        # two attempts that each ran into their 100ms timeout
        assert (value("reconciler_run_duration_seconds_sum", workflow=bad) or 0) >= 0.2 * bad_runs

        assert (
            counter(
                "reconciler_action_duration_seconds_count", plugin="file.write", result="success"
            )
            - before["write"]
            == 1
        )
        assert (
            counter(
                "reconciler_action_duration_seconds_count", plugin="shell.run", result="Timeout"
            )
            - before["timeouts"]
            == 2 * bad_runs
        )
        assert (
            counter("reconciler_action_retries_total", plugin="shell.run") - before["retries"]
            == bad_runs
        )
        # write -> done for ok; slow -> failed for each run of bad; none for secret
        assert value("reconciler_transitions_total", workflow=ok) == 1
        assert value("reconciler_transitions_total", workflow=bad) == bad_runs
        assert value("reconciler_transitions_total", workflow=secret) == 0

        assert value("reconciler_runs_in_progress") == in_progress
        assert value("reconciler_queue_depth") == 0, "bad and secret wait in back-off, not queued"
        source = controller.source
        assert value("reconciler_git_fetch_total", result="success") == source.fetch_count_ok >= 1
        assert value("reconciler_git_fetch_total", result="failure") == 0
        assert source.last_success_at is not None
        assert value("reconciler_git_last_fetch_success_timestamp_seconds") == pytest.approx(
            source.last_success_at.timestamp()
        )
        assert series("reconciler_snapshot_info") == [{"revision": first}]
        assert value("reconciler_snapshot_info", revision=first) == 1
        assert value("reconciler_config_errors", file=f"{broken}.yaml") == errors_in_broken
        assert (
            counter("reconciler_secret_errors_total", provider="env", reason="missing")
            - before["secrets"]
            >= 1
        )

        # fix the broken file, retire ok: the old revision, the fixed file and ok's series go
        put(repo, broken, workflow(broken, {"done": {"end": "success"}}, start="done"))
        (repo / f"{ok}.yaml").unlink()
        second = commit(repo, "fix broken, remove ok")
        await eventually(store, broken, lambda s: s.status is Health.CONVERGED)
        await until(lambda: not series("reconciler_workflow_status", workflow=ok), "ok retired")
        assert series("reconciler_snapshot_info") == [{"revision": second}]
        assert value("reconciler_config_errors", file=f"{broken}.yaml") is None
        assert not [s for s in exposition() if s.labels.get("workflow") == ok]


async def test_label_values_stay_bounded_however_many_runs_happen(tmp_path: Path) -> None:
    uid = uuid.uuid4().hex[:8]
    ok, bad, secret = (f"{w}-{uid}" for w in ("ok", "bad", "secret"))
    repo = init_repo(tmp_path / "repo")
    put(repo, ok, file_workflow(ok, tmp_path / "motd", "hello"))
    put(repo, bad, failing_workflow(bad))
    put(repo, secret, secret_workflow(secret, f"env:RECONCILER_SECRET_TEST_UNSET_{uid.upper()}"))
    commit(repo)
    plugins = set(PluginRegistry.discover().names())
    error_names = {"success"} | {c.__name__ for c in _subclasses(ActionError)}

    def ours() -> set[tuple[str, tuple[tuple[str, str], ...]]]:
        return {
            (s.name, tuple(sorted(s.labels.items())))
            for s in exposition()
            if s.name.startswith("reconciler_")
        }

    async with running(tmp_path, repo) as (controller, store):
        await eventually(store, ok, lambda s: s.status is Health.CONVERGED)
        await eventually(store, bad, lambda s: s.status is Health.DEGRADED)
        await eventually(store, secret, lambda s: s.status is Health.DEGRADED)
        await until(lambda: not controller.queue.processing, "workers idle")
        shape = {(name, tuple(k for k, _ in labels)) for name, labels in ours()}
        before = ours()
        for _ in range(3):  # three more runs of ok, each with a new run id
            runs = await store.list_runs(ok)
            assert await controller.request_sync(ok)
            await until(lambda: not controller.queue.pending(ok), "sync done")
            await eventually(store, ok, lambda s: s.status is Health.CONVERGED)
            assert len(await store.list_runs(ok)) == len(runs) + 1
        after = ours()
        run_ids = {r.id for name in (ok, bad, secret) for r in await store.list_runs(name)}

    # more runs change values, never the set of series
    assert {k for k in after if "bucket" not in k[0]} == {k for k in before if "bucket" not in k[0]}
    text = "\n".join(f"{n}{dict(labels)}" for n, labels in after)
    assert len(run_ids) >= 6
    assert not [r for r in run_ids if r in text], "a run id became a label"
    allowed_labels = {
        "workflow",
        "status",
        "result",
        "plugin",
        "revision",
        "file",
        "provider",
        "reason",
        "outcome",
        "version",
        "le",
    }
    assert {k for _name, keys in shape for k in keys} <= allowed_labels
    for name, labels in after:
        for key, val in labels:
            assert not re.search(r"\s", val), f"{name}: {key}={val!r} looks like text"
            if key == "workflow" and uid in val:
                assert val in (ok, bad, secret)
            elif key == "status":
                assert val in {h.value for h in Health}
            elif key == "plugin":
                assert val in plugins
            elif key == "result" and name.startswith("reconciler_runs_total"):
                assert val in RUN_RESULTS
            elif key == "result" and name.startswith("reconciler_action_duration"):
                assert val in error_names
            elif key == "provider" and name.startswith("reconciler_notifications"):
                pass  # a Provider document's name: bounded by the repository, like workflow
            elif key == "outcome":
                assert val in NOTIFICATION_OUTCOMES
            elif key == "provider":
                assert val in SECRET_PROVIDERS
            elif key == "reason" and name == "reconciler_workflow_reason":
                assert val in {r.value for r in Reason} | {"None", "Other"}
            elif key == "reason":
                assert val in SECRET_REASONS
    assert len([1 for n, _ in after if n == "reconciler_snapshot_info"]) == 1


def _subclasses(cls: type) -> set[type]:
    out: set[type] = set()
    sub: type
    for sub in cls.__subclasses__():
        out |= {sub} | _subclasses(sub)
    return out
