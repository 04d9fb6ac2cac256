"""Several `reconciler run` processes sharing one PostgreSQL store.

Real daemon processes on a real git repository and the real PostgreSQL at 127.0.0.1:5432, each
test in a schema of its own (the daemons' ``--store`` URL carries ``search_path``). Lease TTLs
are 2 s so that take-over is quick. What is checked comes from the shared store (runs and their
transition journal) and from each replica's own JSON log, which names the runs it started or took
over. The slow tests of the suite: about 15-25 s each.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.support import postgres
from tests.support.daemon import DaemonProcess, run_args, spawn
from tests.support.net import free_port
from tests.support.repos import commit, git, init_repo
from tests.support.waiting import until
from tests.support.workflows import file_workflow, put

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

LEASE_TTL = 2.0
TAKEOVER_MARGIN = 6.0
"""Generous bound past the lease TTL for another replica to resume a run (scans run every TTL/3)."""


def write_file_workflow(repo: Path, out: Path, name: str, content: str) -> None:
    """A cheap workflow without a probe: it runs once per spec change and writes one file."""
    put(repo, file_workflow(name, out / f"{name}.txt", content))


def write_slow_workflow(repo: Path, out: Path, name: str, seconds: float) -> None:
    """A workflow whose ``work`` state sleeps, then appends its name to a file."""
    repo.joinpath(f"{name}.yaml").write_text(
        f"""\
apiVersion: reconciler/v1
kind: Workflow
metadata: {{name: {name}}}
spec:
  interval: 1h
  start: work
  states:
    work:
      action:
        plugin: shell.run
        with: {{argv: [sh, -c, "sleep {seconds} && echo {name} >> {out}/{name}.log"]}}
      next: done
      onError: failed
    done: {{end: success}}
    failed: {{end: failure}}
"""
    )


@dataclass
class Replica:
    name: str
    daemon: DaemonProcess

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        return self.daemon.proc

    def events(self) -> list[dict[str, Any]]:
        return self.daemon.events()

    def runs_started(self) -> set[str]:
        """Run ids this replica started (not taken over)."""
        return {str(e["run"]) for e in self.events() if "starting run" in e.get("event", "")}

    def runs_begun(self) -> set[str]:
        """Run ids this replica started or took over."""
        return {
            str(e["run"])
            for e in self.events()
            if e.get("run") and ("starting run" in e["event"] or "taking over run" in e["event"])
        }


@dataclass
class Cluster:
    """Daemon processes on one repository and one PostgreSQL schema."""

    tmp_path: Path
    repo: Path
    store_url: str
    dsn: str
    replicas: list[Replica] = field(default_factory=list)

    def start(self, count: int, *extra: str) -> list[Replica]:
        started = []
        for _ in range(count):
            name = f"r{len(self.replicas) + 1}"
            process = spawn(
                run_args(
                    self.repo,
                    self.tmp_path / f"data-{name}",
                    "--store",
                    self.store_url,
                    "--replica-id",
                    name,
                    "--lease-ttl",
                    f"{LEASE_TTL:g}s",
                    "--listen",
                    f"127.0.0.1:{free_port()}",
                    "--poll-interval",
                    "500ms",
                    "--grace-period",
                    "1s",
                    *extra,
                ),
                cwd=self.tmp_path,
                log=self.tmp_path / f"{name}.log",
            )
            replica = Replica(name, process)
            self.replicas.append(replica)
            started.append(replica)
        for replica in started:  # all start at once; then wait for each
            replica.daemon.wait_started()
        return started

    def query(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        with psycopg.connect(self.dsn, row_factory=dict_row) as conn:
            return list(conn.execute(sql, params).fetchall())

    def runs(self) -> list[dict[str, Any]]:
        return self.query("select id, workflow, revision, status, attempt from runs")

    def wait_for(self, what: str, check: Callable[[], bool], *, timeout: float = 180.0) -> float:
        """Poll ``check`` until true; returns the monotonic time it became true."""

        def done() -> bool:
            if check():
                return True
            for replica in self.replicas:
                if replica.proc.poll() not in (None, -signal.SIGKILL):
                    raise AssertionError(f"{replica.name} exited:\n{replica.daemon.log_text()}")
            return False

        until(done, timeout, what, interval=0.1)
        return time.monotonic()

    def stop_all(self) -> None:
        for replica in self.replicas:  # all stop at once; then wait for each
            replica.daemon.terminate()
        for replica in self.replicas:
            replica.daemon.wait(within=15)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    repo = init_repo(tmp_path / "repo")
    with postgres.schema("replicas_test") as name:
        # A paused replica must not keep a lock past a second: idle transactions are ended.
        url = postgres.store_url(name, options="%20-cidle_in_transaction_session_timeout%3D1000")
        group = Cluster(tmp_path, repo, url, postgres.dsn(name))
        try:
            yield group
        finally:
            group.stop_all()


def succeeded_per_revision(cluster: Cluster) -> Counter[tuple[str, str]]:
    return Counter(
        (r["workflow"], r["revision"]) for r in cluster.runs() if r["status"] == "succeeded"
    )


def finished_entries(cluster: Cluster, run_id: str) -> list[dict[str, Any]]:
    return cluster.query(
        "select seq, outcome from journal where run_id = %s and kind = 'run_finished'", run_id
    )


def test_three_replicas_converge_300_workflows_exactly_once_per_revision_and_share_the_work(
    cluster: Cluster, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    names = [f"wf-{i:03d}" for i in range(300)]
    for name in names:
        write_file_workflow(cluster.repo, out, name, "one")
    first = commit(cluster.repo, "300 workflows")
    replicas = cluster.start(3, "--max-concurrent-runs", "8")

    expected = {(name, first) for name in names}
    cluster.wait_for(
        "300 runs at the first revision",
        lambda: set(succeeded_per_revision(cluster)) >= expected,
    )
    for name in names[::10]:  # a second revision changes a tenth of them
        write_file_workflow(cluster.repo, out, name, "two")
    second = commit(cluster.repo, "change 30 workflows")
    expected |= {(name, second) for name in names[::10]}
    cluster.wait_for(
        "30 runs at the second revision",
        lambda: set(succeeded_per_revision(cluster)) >= expected,
    )
    time.sleep(LEASE_TTL)  # time passing is the test: a lease's time for a second run to appear
    cluster.stop_all()

    counts = succeeded_per_revision(cluster)
    assert set(counts) == expected
    assert set(counts.values()) == {1}, [k for k, v in counts.items() if v > 1]
    assert all(r["status"] == "succeeded" for r in cluster.runs())
    assert {p.read_text() for p in out.iterdir()} == {"one", "two"}
    assert sum(p.read_text() == "two" for p in out.iterdir()) == 30

    for replica in replicas:  # every line names the replica that wrote it
        assert {e.get("replica") for e in replica.events() if e.get("run")} == {replica.name}
    # A replica may log "starting run" and then find its lease gone (a missed renewal on a
    # starved CPU): its fenced journal write is refused and that run never exists. Count the
    # runs the store holds: 330, each started by exactly one replica.
    stored = {str(r["id"]) for r in cluster.runs()}
    by_replica = {r.name: r.runs_started() & stored for r in replicas}
    assert all(by_replica.values()), {k: len(v) for k, v in by_replica.items()}
    assert len(stored) == 330
    assert sum(len(v) for v in by_replica.values()) == 330  # no run started by two replicas
    # A replica starved of CPU may miss a renewal and see a run taken over; still, every run
    # has finished exactly once in the journal.
    finished = cluster.query(
        "select run_id, count(*) as n from journal where kind = 'run_finished' group by run_id"
    )
    assert len(finished) == 330 and {row["n"] for row in finished} == {1}
    assert all(r.proc.returncode == 0 for r in replicas)


def test_runs_of_a_replica_killed_mid_run_are_resumed_by_another_within_the_lease(
    cluster: Cluster, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    names = [f"slow-{i}" for i in range(6)]
    for name in names:
        write_slow_workflow(cluster.repo, out, name, 3)
    commit(cluster.repo, "six slow workflows")
    replicas = cluster.start(3, "--max-concurrent-runs", "2")

    def in_work() -> list[dict[str, Any]]:
        return cluster.query(
            "select id, workflow from runs where status = 'running' and current_state = 'work'"
        )

    def in_work_by_replica() -> dict[str, set[str]]:
        working = {str(row["id"]) for row in in_work()}
        return {r.name: working & r.runs_begun() for r in replicas}

    cluster.wait_for("runs in their slow state", lambda: len(in_work()) >= 3)
    # The victim is whoever holds runs in their slow state right now (a replica that began the
    # most runs may be between them); only runs still running after the kill are orphaned.
    cluster.wait_for(
        "a replica with a run in its slow state", lambda: any(in_work_by_replica().values())
    )
    holding = in_work_by_replica()
    victim = next(r for r in replicas if holding[r.name] == max(holding.values(), key=len))
    victim.proc.kill()
    killed_at = time.monotonic()
    victim.proc.wait(5)
    still_running = {
        str(row["id"]) for row in cluster.query("select id from runs where status = 'running'")
    }
    orphaned = holding[victim.name] & still_running
    assert orphaned

    def resumed() -> bool:
        rows = cluster.query(
            "select distinct run_id from journal where kind = 'run_resumed' and run_id = any(%s)",
            list(orphaned),
        )
        return len(rows) == len(orphaned)

    taken_over_at = cluster.wait_for("the orphaned runs to be resumed", resumed, timeout=30)
    assert taken_over_at - killed_at < LEASE_TTL + TAKEOVER_MARGIN

    cluster.wait_for(
        "every workflow to finish",
        lambda: len(succeeded_per_revision(cluster)) == len(names),
        timeout=30,
    )
    runs = {r["id"]: r for r in cluster.runs()}
    for run_id in orphaned:
        assert runs[run_id]["status"] == "succeeded"
        assert runs[run_id]["attempt"] >= 2  # the same run, resumed in its state
        assert len(finished_entries(cluster, run_id)) == 1
    survivors = [r for r in replicas if r is not victim]
    assert orphaned <= set().union(*(r.runs_begun() for r in survivors))
    assert set(succeeded_per_revision(cluster).values()) == {1}
    for name in names:  # nothing lost: every workflow's work was done
        assert (out / f"{name}.log").exists()


def test_a_paused_replica_cannot_complete_a_run_another_took_over(
    cluster: Cluster, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    write_slow_workflow(cluster.repo, out, "paused", 3)
    commit(cluster.repo, "one slow workflow")
    replicas = cluster.start(2)

    def running_id() -> str | None:
        rows = cluster.query("select id from runs where current_state = 'work'")
        return str(rows[0]["id"]) if rows else None

    cluster.wait_for("the run to enter its slow state", lambda: running_id() is not None)
    run_id = running_id()
    assert run_id is not None
    owner = next(r for r in replicas if run_id in r.runs_begun())
    other = next(r for r in replicas if r is not owner)
    owner.proc.send_signal(signal.SIGSTOP)
    try:
        cluster.wait_for(
            "the other replica to finish the run",
            lambda: (
                cluster.query("select status from runs where id = %s", run_id)[0]["status"]
                == "succeeded"
            ),
            timeout=30,
        )
    finally:
        owner.proc.send_signal(signal.SIGCONT)
    assert run_id in other.runs_begun()

    cluster.wait_for(
        "the woken replica to learn it lost the lease",
        lambda: any(e.get("error") == "LeaseLost" for e in owner.events()),
        timeout=20,
    )
    time.sleep(LEASE_TTL)  # time passing is the test: a lease's time for a late write to land
    assert owner.proc.poll() is None  # it carries on with other work
    cluster.stop_all()

    assert [e["outcome"] for e in finished_entries(cluster, run_id)] == ["succeeded"]
    last = cluster.query(
        "select kind from journal where run_id = %s order by seq desc limit 1", run_id
    )
    assert last[0]["kind"] == "run_finished"
    assert succeeded_per_revision(cluster) == Counter(
        {("paused", git(cluster.repo, "rev-parse", "HEAD")): 1}
    )
    assert cluster.query("select count(*) as n from runs")[0]["n"] == 1


def test_a_second_daemon_on_the_same_sqlite_store_fails_at_start_with_a_clear_message(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    init_repo(repo)
    out = tmp_path / "out"
    out.mkdir()
    write_file_workflow(repo, out, "solo", "one")
    commit(repo, "one workflow")

    def daemon(log_name: str) -> DaemonProcess:
        return spawn(
            run_args(repo, tmp_path / "data", "--listen", f"127.0.0.1:{free_port()}"),
            cwd=tmp_path,
            log=tmp_path / log_name,
        )

    first = daemon("first.log")
    try:
        first.wait_started()
        second = daemon("second.log")
        assert second.wait(within=60) == 2
        message = second.log_text()
        assert f"another reconciler daemon (pid {first.proc.pid})" in message
        assert str(tmp_path / "data" / "reconciler.db") in message
        assert "use a PostgreSQL store" in message
        assert first.proc.poll() is None  # the first one is unaffected
    finally:
        assert first.stop() == 0

    third = daemon("third.log")  # the lock went with the first daemon
    try:
        third.wait_started()
    finally:
        assert third.stop() == 0
