"""Replica benchmark: runs per second with 1, 2 and 3 daemons sharing one PostgreSQL.

The same workload for each replica count: ``--workflows`` workflows (no probe, so each runs
exactly once per revision) committed at once to a local git repository that 1, 2 or 3 real
``reconciler run`` processes already watch, all on one fresh PostgreSQL schema. The clock starts
when the commit returns and stops when the store holds a succeeded run of every workflow at that
revision; "runs/s" is workflows / seconds, "x 1 replica" that rate over the one-replica rate of
the same mode. The table also shows how the runs split over the replicas (from their logs) and
how many lease claims the store counted (the sum of fencing tokens: every claim after a release
takes the lease over, so the token counts claims), i.e. what the coordination cost.

Two modes, both measured by default (``--mode``):

- **cpu**: one ``file.write`` state per run; a run is all CPU (the daemon's and PostgreSQL's),
  so on a machine with fewer cores than replicas plus PostgreSQL, more replicas cannot run faster;
- **io**: ``--io-workflows`` workflows doing the same write, then ``--io-wait`` (2 s) in an
  ``after:`` state — a timer, no CPU, as a run waiting on a remote system does. Each replica runs
  ``--max-concurrent-runs`` at once, so the rate is bound by the waits and grows with the
  replicas as long as the CPU keeps up. The wait must dwarf a run's own cost (about 20 store
  transactions, 0.2-0.6 s on a busy 2-core machine): with ``--io-wait 200ms`` there, the runs
  are not I/O-bound and the figure shows CPU contention again (see bench/README.md).

Run ``python bench/replicas.py`` (PostgreSQL at 127.0.0.1:5432, database ``test``; about five
minutes); ``--workflows``, ``--io-workflows``, ``--max-concurrent-runs``, ``--io-wait`` change the
workload. Figures are recorded in ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cluster import (
    commit_all,
    file_workflow,
    init_repo,
    schema,
    start_replicas,
    stop_all,
    wait_started,
)


@dataclass
class Result:
    mode: str
    replicas: int
    workflows: int
    seconds: float
    split: list[int]
    claims: int

    @property
    def rate(self) -> float:
        return self.workflows / self.seconds


def measure(
    replicas: int, *, workflows: int, max_concurrent: int, wait: str | None, work: Path
) -> Result:
    mode = "cpu" if wait is None else "io"
    root = work / f"{mode}-r{replicas}"
    repo, out = root / "repo", root / "out"
    init_repo(repo)
    out.mkdir()
    (repo / "warmup.yaml").write_text(file_workflow("warmup", out / "w", "w"))
    commit_all(repo, "warm-up")
    flags = ["--poll-interval", "200ms", "--max-concurrent-runs", str(max_concurrent)]
    with schema("bench_replicas") as db:
        procs = start_replicas(replicas, repo=repo, root=root, store=db.store_url(), flags=flags)
        try:
            wait_started(procs)
            deadline = time.monotonic() + 60
            while db.scalar("select count(*) from runs where status = 'succeeded'") != 1:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the warm-up workflow did not run; see {root}")
                time.sleep(0.05)
            for n in range(workflows):
                name = f"bench-{n:04d}"
                text = file_workflow(name, out / name, "x", wait=wait)
                (repo / f"{name}.yaml").write_text(text)
            revision = commit_all(repo, "workload")
            start = time.monotonic()
            while (
                db.scalar(
                    "select count(*) from runs where status = 'succeeded' and revision = %s",
                    revision,
                )
                < workflows
            ):
                if time.monotonic() - start > 600:
                    raise SystemExit("the workload did not finish in 10 minutes")
                time.sleep(0.02)
            seconds = time.monotonic() - start
            claims = db.scalar(
                "select coalesce(sum(fencing_token), 0) from leases"
                " where name like 'workflow:bench-%%'"
            )
        finally:
            stop_all(procs)
    split = [p.runs_started() for p in procs]
    return Result(mode, replicas, workflows, seconds, split, claims)


def print_table(results: list[Result], *, mode: str, args: argparse.Namespace) -> None:
    what = (
        "one file.write each"
        if mode == "cpu"
        else f"one file.write, then {args.io_wait} in an after: state"
    )
    print(
        f"{mode}-bound: {results[0].workflows} workflows ({what}), --max-concurrent-runs "
        f"{args.max_concurrent_runs} per replica, one PostgreSQL, {os.cpu_count()} cores"
    )
    print(
        f"{'replicas':>8}  {'seconds':>8}  {'runs/s':>7}  {'x 1 replica':>11}  "
        f"{'lease claims':>12}  runs per replica"
    )
    base = next((r.rate for r in results if r.replicas == 1), None)
    for r in results:
        split = " / ".join(str(n) for n in r.split)
        ratio = f"{r.rate / base:.2f}x" if base else "-"
        print(
            f"{r.replicas:>8}  {r.seconds:>8.2f}  {r.rate:>7.1f}  {ratio:>11}  "
            f"{r.claims:>12}  {split}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workflows", type=int, default=300)
    parser.add_argument("--max-concurrent-runs", type=int, default=4)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--io-workflows", type=int, default=150)
    parser.add_argument("--mode", choices=["cpu", "io", "both"], default="both")
    parser.add_argument("--io-wait", default="2s", help="how long an io-bound run waits")
    args = parser.parse_args(argv)
    modes = ["cpu", "io"] if args.mode == "both" else [args.mode]
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp:
        for i, mode in enumerate(modes):
            results = [
                measure(
                    count,
                    workflows=args.workflows if mode == "cpu" else args.io_workflows,
                    max_concurrent=args.max_concurrent_runs,
                    wait=args.io_wait if mode == "io" else None,
                    work=Path(tmp),
                )
                for count in args.replicas
            ]
            if i:
                print()
            print_table(results, mode=mode, args=args)


if __name__ == "__main__":
    main()
