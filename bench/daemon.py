"""Daemon benchmark: how the daemon's path scales, from a commit to the statuses it settles.

Six figures on the 2-core development machine, each printed with its target and PASS/MISS:

(a) cold load and validation of 10,000 workflow files (``load_tree`` + ``validate_snapshot``,
    what ``reconciler validate`` and the daemon's first revision do), the best of three fresh
    processes;
(b) re-snapshot when 1 of 10,000 files changes: the local git source's incremental read of the
    new commit, the changed file re-loaded and the snapshot re-validated (unchanged workflows
    from the cache), as the :class:`~reconciler.daemon.controller.Controller` does it; an info
    row adds the rest of the controller's handling of that revision (scheduler, queueing every
    workflow for its re-check);
(c) commit-to-run-start latency, p50 and p99, through a running Controller on a SQLite store,
    (1) for a watched local repository (the real ``watchfiles`` watcher sees the commit) and
    (2) for a ``file://`` remote, pushed to and then refreshed with ``source.refresh()``, exactly
    what the webhook handler calls; "run start" is the run's ``started_at`` in the store's
    journal and "commit" the moment ``git commit`` (local) or ``git push`` (remote) returned;
(d) a no-drift pass over 10,000 workflows whose ``observe`` is a trivial check (``file.read`` of
    one small file that matches ``desired``): every workflow is queued as a drift check and the
    Controller's workers observe, decide and store a status for each; timed until the queue is
    empty, the best of three passes (an info row adds the commit of the statuses the pass wrote
    behind);
(e) resident memory (VmRSS) of a fresh process holding a Controller with 10,000 workflows loaded;
    info rows add the CPU time of that process's first revision, and of a second fresh process's
    on the same data directory: a restart on unchanged files, every file from the snapshot cache
    the first one wrote (``reconciler/daemon/snapshot_cache.py``).
(f) throughput: runs per second converging ``--throughput-workflows`` (1,000) new workflows of one
    ``file.write`` state each, committed at once, through a running Controller with the daemon's
    default settings and logging (info, JSON lines into a file), on SQLite (the target) and on
    PostgreSQL beside it; ``--only throughput`` runs only this figure.

The workflows come from one template (observe, desired, a retried write state, shorthands), in
100 directories of a temporary git repository; (c) uses ``--latency-workflows`` (1,000) so the
re-check of every workflow each commit triggers stays short between samples. (b) and (e) call the
controller's revision handler directly (``Controller._on_revision``, what the source loop awaits)
without starting its workers. Run ``python bench/daemon.py`` (two to three minutes;
``--workflows`` and ``--samples`` make it smaller, as the smoke test in
``tests/integration/bench/test_bench_daemon_smoke.py`` does). Figures are recorded in ``bench/README.md``.

``--workflows 100000`` is the large mode (:data:`LARGE`): the targets of :data:`LARGE_TARGETS`
(cold load, latency and RSS; re-snapshot and no-drift pass are shown without one), (c) on
repositories of 100,000 workflows with 5 commits each, not drained between samples (see
:func:`bench_latency`). It takes about a quarter of an hour on the 2-core machine, most of it
generating and committing the three repositories of 100,000 files.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import structlog
from cluster import commit_all, file_workflow, git, init_repo, schema  # bench/cluster.py

from reconciler.config.loader import load_tree
from reconciler.config.validate import ValidationCache, validate_snapshot
from reconciler.daemon.controller import Controller
from reconciler.daemon.queue import Reason
from reconciler.daemon.revision import load_snapshot
from reconciler.daemon.settings import DaemonSettings
from reconciler.plugin import PluginRegistry
from reconciler.sources import Revision, Source, open_source
from reconciler.store import Store
from reconciler.telemetry.logging import configure_logging

TEMPLATE = """\
apiVersion: reconciler/v1
kind: Workflow
metadata:
  name: {name}
  labels: {{team: team-{team:02d}, bench: daemon}}
spec:
  interval: 1h
  inputs:
    path: {target}
    content: "{content}"
  observe:
    plugin: file.read
    with: {{path: "${{{{ inputs.path }}}}", missingOk: true}}
  desired:
    content: "{content}"
  start: write
  states:
    write:
      action:
        plugin: file.write
        with:
          path: "${{{{ inputs.path }}}}"
          content: "${{{{ inputs.content }}}}"
      retry: {{attempts: 3, delay: 1s, backoff: 2.0}}
      next: done
      onError: failed
    done: {{end: success}}
    failed: {{end: failure}}
"""
"""One workflow: keep ``target`` holding ``content`` (the quickstart's shape)."""

CONTENT = "hello from the bench"

TARGETS: dict[str, float | None] = {
    "a": 1.5,
    "b": 0.050,
    "c": 0.500,
    "d": 1.0,
    "e": 150.0,
}
"""Targets at 10,000 workflows (``bench/README.md`` says where each comes from): seconds, except
(e) in MB."""

LARGE = 100_000
"""From this many workflows on (``--workflows 100000``) the large targets apply, and the
latency figure is taken on a repository of that size."""
LARGE_TARGETS: dict[str, float | None] = {
    "a": 15.0,
    "b": None,
    "c": 0.500,
    "d": None,
    "e": 1500.0,
}
"""Targets at 100,000 workflows: cold load, latency and RSS; (b) and (d) are shown, untargeted."""


def targets_for(workflows: int) -> dict[str, float | None]:
    return LARGE_TARGETS if workflows >= LARGE else TARGETS


@dataclass
class Row:
    """One line of the results table."""

    key: str
    what: str
    value: float
    unit: str
    target: float | None

    @property
    def verdict(self) -> str:
        if self.target is None:
            return "info"
        return "PASS" if self.value < self.target else "MISS"

    def cells(self) -> list[str]:
        shown = (
            f"{self.value * 1000:.0f} ms"
            if self.unit == "s" and self.value < 1
            else (f"{self.value:.2f} s" if self.unit == "s" else f"{self.value:.0f} {self.unit}")
        )
        if self.target is None:
            target = "-"
        elif self.unit == "s":
            target = f"< {self.target * 1000:.0f} ms" if self.target < 1 else f"< {self.target:g} s"
        else:
            target = f"< {self.target:g} {self.unit}"
        return [self.key, self.what, shown, target, self.verdict]


# -- repositories ----------------------------------------------------------------------------


def workflow_text(
    index: int, target_dir: Path, *, content: str = CONTENT, own: bool = False
) -> str:
    """The workflow file; it observes ``target_dir/observed.txt``, or its own file if ``own``."""
    return TEMPLATE.format(
        name=workflow_name(index),
        team=index % 100,
        target=target_file(index, target_dir, own=own).as_posix(),
        content=content,
    )


def target_file(index: int, target_dir: Path, *, own: bool) -> Path:
    return target_dir / (f"{workflow_name(index)}.txt" if own else "observed.txt")


def workflow_name(index: int) -> str:
    return f"wf-{index:05d}"


def workflow_path(repo: Path, index: int) -> Path:
    return repo / f"team-{index % 100:02d}" / f"{workflow_name(index)}.yaml"


def make_repo(repo: Path, count: int, target_dir: Path, *, own: bool = False) -> None:
    """A git repository with ``count`` workflows on branch ``main``, one commit, all in sync
    with their target file (shared, or one per workflow when ``own``)."""
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    target_dir.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        path = workflow_path(repo, i)
        path.parent.mkdir(exist_ok=True)
        path.write_text(workflow_text(i, target_dir, own=own))
        target = target_file(i, target_dir, own=own)
        if own or i == 0:
            target.write_text(CONTENT)
    commit(repo, "workflows")


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


# -- the controller --------------------------------------------------------------------------


def quiet_logging() -> None:
    """Warnings only: 10,000 info lines per pass would measure the terminal, not the daemon."""
    logging.basicConfig(level=logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


async def open_controller(
    repo: str, data_dir: Path, *, poll_interval: str = "1h"
) -> tuple[Controller, Store, PluginRegistry]:
    # the workdir (the only file root) holds the targets next to the data directory: workflows
    # may not write inside the data directory
    settings = DaemonSettings.load(
        repo=repo, data_dir=data_dir, poll_interval=poll_interval, workdir=data_dir.parent
    )
    store = await Store.open(settings.store, data_dir=settings.data_dir)
    source = open_source(
        repo, data_dir=settings.data_dir, poll_interval=settings.poll_interval.total_seconds()
    )
    registry = PluginRegistry.discover()
    return Controller(settings, store, source=source, registry=registry), store, registry


async def fetch(source: Source) -> Revision:
    revision = await source.fetch()
    assert revision is not None, "the source saw no new revision"
    return revision


async def drained(controller: Controller, *, within: float) -> None:
    """Until the controller's queue is empty and no worker is busy."""
    deadline = time.monotonic() + within
    while len(controller.queue) or controller.queue.processing:
        if time.monotonic() > deadline:
            raise TimeoutError(f"queue not drained after {within:g}s")
        await asyncio.sleep(0.005)


# -- (a) and (b) -----------------------------------------------------------------------------


def bench_cold_loads(repo: Path, *, times: int = 3) -> tuple[float, int]:
    """The best of ``times`` cold loads, each in a fresh process (nothing cached, nothing warm):
    this machine's noise moves a single figure by up to 40%."""
    results = []
    for _ in range(times):
        out = subprocess.run(
            [sys.executable, __file__, "--cold-load-of", str(repo)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        found = json.loads(out.strip().splitlines()[-1])
        results.append((float(found["seconds"]), int(found["workflows"])))
    return min(results)


def bench_cold_load(repo: Path) -> tuple[float, int]:
    registry = PluginRegistry.discover()
    started = time.perf_counter()
    snapshot = load_tree(repo)
    problems = validate_snapshot(snapshot, registry)
    elapsed = time.perf_counter() - started
    errors = [p for p in snapshot.problems + problems if p.is_error]
    assert not errors, f"the bench's workflows should be valid: {errors[:3]}"
    return elapsed, len(snapshot.workflows)


async def bench_resnapshot(
    repo: Path, work: Path, count: int, target_dir: Path
) -> tuple[float, float]:
    """Best of three commits changing one file: (the new snapshot, the controller's handling).

    The snapshot is the source's incremental read of the commit, the
    changed file re-loaded (the others' results reused, :func:`load_snapshot`) and every workflow
    validated (unchanged ones from the :class:`ValidationCache`), as the daemon's
    ``RevisionApplier.apply`` does it. The
    controller's handling of the same revision adds the rest of that method: invalid and removed
    workflows, the drift scheduler, and queueing every workflow for its re-check.
    """
    controller, store, registry = await open_controller(str(repo), work / "resnapshot")
    try:
        first = await fetch(controller.source)
        await controller._on_revision(first)
        snapshot = load_snapshot(first, None)
        cache = ValidationCache()
        validate_snapshot(snapshot, controller.registry, cache=cache)
        snapshot_times: list[float] = []
        handling_times: list[float] = []
        changed_path = workflow_path(repo, count // 2).relative_to(repo).as_posix()
        for attempt in range(3):
            workflow_path(repo, count // 2).write_text(
                workflow_text(count // 2, target_dir, content=f"changed {attempt}")
            )
            commit(repo, f"change one workflow ({attempt})")
            started = time.perf_counter()
            revision = await fetch(controller.source)
            snapshot = load_snapshot(revision, snapshot)
            problems = validate_snapshot(snapshot, controller.registry, cache=cache)
            loaded = time.perf_counter()
            await controller._on_revision(revision)
            handled = time.perf_counter()
            assert revision.changed == {changed_path}
            assert not problems and len(snapshot.workflows) == count
            snapshot_times.append(loaded - started)
            handling_times.append(handled - loaded)
        return min(snapshot_times), min(handling_times)
    finally:
        await registry.close()
        await store.close()


# -- (c) -------------------------------------------------------------------------------------


async def wait_for_run(store: Store, name: str, *, after: datetime, within: float = 30) -> datetime:
    """``started_at`` of the first run of ``name`` that started after ``after``."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for run in await store.list_runs(name, limit=3):
            if run.started_at > after:
                return run.started_at
        await asyncio.sleep(0.005)
    raise TimeoutError(f"no run of {name} started within {within:g}s")


async def bench_latency(kind: str, work: Path, *, count: int, samples: int) -> list[float]:
    """Commit-to-run-start latencies (seconds) through a running controller.

    ``kind`` is ``local`` (the controller watches the repository it is committed to) or
    ``remote`` (it clones a bare ``file://`` repository; each commit is pushed there and the
    source is refreshed the way the webhook handler does). Below :data:`LARGE` workflows the
    queue is drained between samples (every commit re-checks every workflow); from there on
    the next commit comes as soon as the sampled run started, while the re-checks of the one
    before are still queued (the changed workflow goes first), as commits come to a daemon that
    size: draining 100,000 re-checks after each sample would take most of the run.
    """
    base = work / f"latency-{kind}"
    authoring = base / "repo"
    targets = base / "targets"
    make_repo(authoring, count, targets, own=True)
    if kind == "remote":
        bare = base / "remote.git"
        git(base, "clone", "-q", "--bare", str(authoring), str(bare))
        git(authoring, "remote", "add", "origin", bare.as_uri())
        watched = bare.as_uri()
    else:
        watched = str(authoring)
    controller, store, registry = await open_controller(watched, base / "data")
    stop = asyncio.Event()
    task = asyncio.create_task(controller.run(stop))
    latencies: list[float] = []
    try:
        await asyncio.wait_for(controller.ready.wait(), 120)
        await drained(controller, within=600)
        for sample in range(samples):
            index = (sample * 7919) % count
            name = workflow_name(index)
            workflow_path(authoring, index).write_text(
                workflow_text(index, targets, content=f"sample {sample}", own=True)
            )
            git(authoring, "add", "-A")
            git(authoring, "commit", "-q", "-m", f"sample {sample}")
            if kind == "remote":
                git(authoring, "push", "-q", "origin", "main")
            committed = datetime.now(UTC)
            if kind == "remote":
                controller.source.refresh()  # what POST /hooks/* does
            started = await wait_for_run(store, name, after=committed)
            latencies.append((started - committed).total_seconds())
            if count < LARGE:
                await drained(controller, within=600)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
        await registry.close()
        await store.close()
    return latencies


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of 20 samples is the largest)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


# -- (d) -------------------------------------------------------------------------------------


async def bench_no_drift(
    repo: Path, work: Path, *, count: int, passes: int = 3
) -> tuple[float, float]:
    """Drift-check passes over every workflow, all in sync: for the fastest of ``passes``, the
    seconds until the queue drains (every status decided, visible through the API), and until
    the statuses the pass wrote behind are committed to the store as well."""
    controller, store, registry = await open_controller(str(repo), work / "no-drift")
    stop = asyncio.Event()
    task = asyncio.create_task(controller.run(stop))
    try:
        await asyncio.wait_for(controller.ready.wait(), 120)
        await drained(controller, within=900)  # the first pass records every workflow Converged
        names = sorted(controller.target.valid)
        assert len(names) == count
        timings = []
        for _ in range(passes):
            started = time.perf_counter()
            for name in names:
                controller.queue.add(name, Reason.DRIFT_CHECK)
            await drained(controller, within=900)
            elapsed = time.perf_counter() - started
            await controller.statuses.flush()
            timings.append((elapsed, time.perf_counter() - started))
        statuses = await store.list_statuses()
        in_sync = sum(1 for s in statuses if s.sync.value == "Synced")
        assert in_sync == count, f"only {in_sync} of {count} workflows in sync"
        runs = await store.list_runs(limit=1)
        assert not runs, "a no-drift pass must not start runs"
        return min(timings)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
        await registry.close()
        await store.close()


# -- (e) -------------------------------------------------------------------------------------


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise OSError("no VmRSS in /proc/self/status")


async def loaded_rss(repo: Path, data_dir: Path) -> tuple[float, float]:
    """RSS of this process once a controller has loaded ``repo`` (run in a fresh process), and
    the seconds (process CPU time) its handling of that first revision took."""
    controller, store, registry = await open_controller(str(repo), data_dir)
    try:
        revision = await fetch(controller.source)
        started = time.process_time()
        await controller._on_revision(revision)
        took = time.process_time() - started
        assert controller.target.valid
        return rss_mb(), took
    finally:
        await registry.close()
        await store.close()


def bench_memory(repo: Path, work: Path) -> tuple[float, float, float]:
    """Two fresh daemons on one data directory: the first's RSS and first-revision time (every
    file parsed; it writes the snapshot cache), and the second's first-revision time (a restart
    on unchanged files: every file from the snapshot cache)."""
    found = []
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, __file__, "--rss-of", str(repo), "--data-dir", str(work / "rss")],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        found.append(json.loads(out.strip().splitlines()[-1]))
    return float(found[0]["rss_mb"]), float(found[0]["seconds"]), float(found[1]["seconds"])


# -- (f) throughput ---------------------------------------------------------------------------

THROUGHPUT_TARGET = 500.0
"""Runs per second converging new trivial workflows on SQLite (higher is better)."""


class RateRow(Row):
    """A row whose figure is a rate: it passes when it reaches its target."""

    @property
    def verdict(self) -> str:
        if self.target is None:
            return "info"
        return "PASS" if self.value >= self.target else "MISS"

    def cells(self) -> list[str]:
        target = "-" if self.target is None else f">= {self.target:g} {self.unit}"
        return [self.key, self.what, f"{self.value:.0f} {self.unit}", target, self.verdict]


@contextlib.contextmanager
def info_logging(path: Path) -> Iterator[None]:
    """The daemon's own logging at its default level (info, JSON lines), into ``path``: a run's
    log lines are part of what a run costs. Warnings only again afterwards."""
    root = logging.getLogger()
    kept = list(root.handlers)
    with path.open("w", encoding="utf-8") as out:
        for handler in kept:
            root.removeHandler(handler)
        configure_logging("info", json_lines=True, stream=out)
        try:
            yield
        finally:
            for handler in list(root.handlers):
                root.removeHandler(handler)
            for handler in kept:
                root.addHandler(handler)
            root.setLevel(logging.WARNING)
            quiet_logging()


async def bench_throughput(work: Path, *, count: int, store: str | None) -> float:
    """Runs per second converging ``count`` new workflows (one ``file.write`` each, no probe,
    so each runs once) committed at once to the repository a running Controller watches.

    The clock starts when ``git commit`` returns (the watcher sees it) and stops once the queue
    has drained after the revision was loaded: every run finished and its outcome committed as
    the workflow's status. ``store`` is a ``--store`` URL (``None``: SQLite in the data
    directory). Logging is the daemon's default (info, JSON lines into a file)."""
    label = "sqlite" if store is None else "postgresql"
    base = work / f"throughput-{label}"
    repo, out = base / "repo", base / "out"
    init_repo(repo)
    out.mkdir(parents=True)
    (repo / "warmup.yaml").write_text(file_workflow("warmup", out / "warmup", "w"))
    commit_all(repo, "warm-up")
    settings = DaemonSettings.load(
        repo=str(repo), data_dir=base / "data", poll_interval="1h", workdir=base, store=store
    )
    with info_logging(base / "daemon.log"):
        db = await Store.open(
            settings.store, data_dir=settings.data_dir, connections=settings.store_connections()
        )
        source = open_source(str(repo), data_dir=settings.data_dir, poll_interval=3600)
        registry = PluginRegistry.discover()
        controller = Controller(settings, db, source=source, registry=registry)
        stop = asyncio.Event()
        task = asyncio.create_task(controller.run(stop))
        try:
            await asyncio.wait_for(controller.ready.wait(), 120)
            await drained(controller, within=120)
            for n in range(count):
                name = f"tp-{n:05d}"
                (repo / f"{name}.yaml").write_text(file_workflow(name, out / name, "x"))
            revision = commit_all(repo, "workload")
            started = time.perf_counter()
            deadline = time.monotonic() + 900
            while controller.target.revision != revision:
                if time.monotonic() > deadline:
                    raise TimeoutError("the watcher did not see the commit")
                await asyncio.sleep(0.005)
            await drained(controller, within=900)
            elapsed = time.perf_counter() - started
            runs = await db.list_runs(limit=count + 10)
            done = {
                r.workflow for r in runs if r.revision == revision and r.status.value == "succeeded"
            }
            assert len(done) == count, f"only {len(done)} of {count} workflows ran"
            statuses = [await controller.statuses.get(f"tp-{n:05d}") for n in range(count)]
            converged = sum(1 for s in statuses if s is not None and s.status.value == "Converged")
            assert converged == count, f"only {converged} of {count} workflows converged"
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)
            await registry.close()
            await db.close()
    return count / elapsed


async def throughput_rows(
    args: argparse.Namespace, work: Path, say: Callable[[str], None]
) -> list[Row]:
    """Row (f): runs/s on SQLite (the target) and on PostgreSQL beside it (when it answers)."""
    n = args.throughput_workflows
    say(f"(f) throughput, {n:,} new workflows on SQLite ...")
    rate = await bench_throughput(work, count=n, store=None)
    rows: list[Row] = [
        RateRow(
            "f", f"runs/s converging {n:,} new workflows, SQLite", rate, "runs/s", THROUGHPUT_TARGET
        )
    ]
    say(f"(f) throughput, {n:,} new workflows on PostgreSQL ...")
    try:
        with schema("bench_daemon") as db:
            rate = await bench_throughput(work, count=n, store=db.store_url())
    except psycopg.OperationalError as exc:
        say(f"(f) PostgreSQL skipped: {exc}")
    else:
        rows.append(
            RateRow("f", f"runs/s converging {n:,} new workflows, PostgreSQL", rate, "runs/s", None)
        )
    return rows


# -- main ------------------------------------------------------------------------------------


def table(rows: Sequence[Row]) -> str:
    head = ["", "figure", "measured", "target", ""]
    cells = [head] + [r.cells() for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)) for cell in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


async def run_all(args: argparse.Namespace, work: Path, say: Callable[[str], None]) -> list[Row]:
    n = args.workflows
    targets = targets_for(n)
    latency_workflows = args.latency_workflows or (n if n >= LARGE else 1_000)
    samples = args.samples or (5 if n >= LARGE else 20)
    target_dir = work / "targets"
    repo = work / "repo"
    say(f"generating {n} workflows in a git repository ...")
    make_repo(repo, n, target_dir)
    rows: list[Row] = []

    say("(a) cold load and validation ...")
    elapsed, loaded = bench_cold_loads(repo)
    label = f"cold load + validation of {loaded:,} files (best of 3)"
    rows.append(Row("a", label, elapsed, "s", targets["a"]))

    say("(b) re-snapshot after a one-file commit ...")
    snapshot, handling = await bench_resnapshot(repo, work, n, target_dir)
    rows.append(Row("b", f"re-snapshot, 1 of {n:,} files changed", snapshot, "s", targets["b"]))
    rows.append(Row("b", "controller's handling of that revision", handling, "s", None))

    for kind, label in (("local", "watched local repo"), ("remote", "file:// remote + refresh()")):
        say(f"(c) commit-to-run-start latency, {label} ...")
        lat = await bench_latency(kind, work, count=latency_workflows, samples=samples)
        size = f"{latency_workflows:,} wf, {len(lat)} commits"
        rows.append(Row("c", f"latency p50, {label} ({size})", statistics.median(lat), "s", None))
        rows.append(Row("c", f"latency p99, {label}", percentile(lat, 0.99), "s", targets["c"]))

    # Restore the file (b) changed, so every workflow is in sync with the target file.
    workflow_path(repo, n // 2).write_text(workflow_text(n // 2, target_dir))
    commit(repo, "restore")
    say("(d) no-drift pass ...")
    elapsed, committed = await bench_no_drift(repo, work, count=n)
    label = f"no-drift pass over {n:,} workflows (best of 3)"
    rows.append(Row("d", label, elapsed, "s", targets["d"]))
    rows.append(Row("d", "... and its statuses committed to the store", committed, "s", None))

    say("(e) resident memory, and a restart on unchanged files ...")
    rss, cold, restart = bench_memory(repo, work)
    rows.append(Row("e", f"RSS with {n:,} workflows loaded", rss, "MB", targets["e"]))
    rows.append(Row("e", "daemon's first revision, every file parsed (CPU)", cold, "s", None))
    rows.append(Row("e", "... after a restart, from the snapshot cache (CPU)", restart, "s", None))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--workflows", type=int, default=10_000, help="files for (a), (b), (d), (e)"
    )
    parser.add_argument(
        "--latency-workflows",
        type=int,
        help="workflows in the repos of (c) (default 1,000; --workflows from 100,000 on)",
    )
    parser.add_argument(
        "--samples", type=int, help="commits per latency case (default 20; 5 from 100,000 on)"
    )
    parser.add_argument(
        "--throughput-workflows", type=int, default=1_000, help="new workflows for (f)"
    )
    parser.add_argument(
        "--only", choices=["throughput"], help="run only this figure: throughput is (f)"
    )
    parser.add_argument("--rss-of", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cold-load-of", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quiet_logging()
    if args.cold_load_of is not None:
        seconds, workflows = bench_cold_load(args.cold_load_of)
        print(json.dumps({"seconds": seconds, "workflows": workflows}))
        return 0
    if args.rss_of is not None:
        rss, seconds = asyncio.run(loaded_rss(args.rss_of, args.data_dir))
        print(json.dumps({"rss_mb": rss, "seconds": seconds}))
        return 0

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="reconciler-bench-") as tmp:
        if args.only == "throughput":
            rows = asyncio.run(throughput_rows(args, Path(tmp), say))
        else:
            rows = asyncio.run(run_all(args, Path(tmp), say))
            rows += asyncio.run(throughput_rows(args, Path(tmp), say))
    print(f"reconciler daemon benchmark ({os.cpu_count()} CPUs, Python {sys.version.split()[0]})")
    print(table(rows))
    return 0 if all(r.verdict != "MISS" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
