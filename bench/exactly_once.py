"""Exactly-once benchmark: three replicas, one killed and one paused mid-work, every round.

Each round, on a fresh PostgreSQL schema and a fresh git repository of ``--workflows``
workflows (no probe, so each runs exactly once per revision; each run writes a file, then waits
``--run-wait`` in an ``after:`` state, so runs are in flight for a while), three real
``reconciler run`` processes start with a short lease TTL (``--lease-ttl``). Once at least two
replicas hold runs in flight, the one holding the most is killed with SIGKILL and another one
holding runs is paused with SIGSTOP for ``--pause`` (longer than the TTL: its leases expire and
its runs are taken over), then woken with SIGCONT. The round waits until every workflow is
``Converged`` with no run left running (``--timeout`` at most), waits one more ``2 x TTL`` for
late writes to land (the woken replica's, whose fenced writes must be refused), stops the
replicas, and counts from the store:

- **doubles**: runs whose journal holds more than one ``run_finished`` entry (a run finished
  twice), plus, for each workflow, every succeeded run beyond the first at the round's revision
  (the revision is committed once and never changes, so exactly one succeeded run per workflow
  is expected; a run resumed by another replica is the same run, with the same id, and counts
  once);
- **lost**: workflows without a succeeded run at the revision when the round ends.

Both totals must be 0. The table also shows, to tell a round where the races happened from one
where they did not: runs resumed by a replica that took them over (``attempt`` > 1) and the
``LeaseLost`` warnings in the replicas' logs (a lease found taken over at renewal, a journal or
status write refused).

Run ``python bench/exactly_once.py`` (PostgreSQL at 127.0.0.1:5432, database ``test``; 20
rounds of about 30 s on a 2-core machine); ``--rounds 2 --workflows 60`` to try it quickly.
Exit status 1 when a double or a lost run was counted.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cluster import (
    Replica,
    Schema,
    commit_all,
    file_workflow,
    init_repo,
    schema,
    start_replicas,
    stop_all,
    wait_started,
)

REPLICAS = 3


@dataclass
class Round:
    number: int
    seconds: float
    killed: str
    paused: str
    doubles: int
    lost: int
    resumed: int
    refused: int


def in_flight_by_owner(db: Schema) -> dict[str, int]:
    """Unfinished runs by the replica holding their workflow's lease."""
    rows = db.query(
        "select l.owner, count(*) from runs r join leases l on l.name = 'workflow:' || r.workflow"
        " where r.status = 'running' and r.parent_id is null and l.expires_at > now()"
        " group by l.owner"
    )
    return {str(owner): int(n) for owner, n in rows}


def choose_victims(
    db: Schema, replicas: list[Replica], *, within: float
) -> tuple[Replica, Replica]:
    """The replica to kill (most runs in flight) and the one to pause (the next), once at least
    two hold runs in flight (or whatever holds runs after ``within`` seconds)."""
    deadline = time.monotonic() + within
    by_name = {r.name: r for r in replicas}
    while True:
        owners = in_flight_by_owner(db)
        holding = sorted((name for name in owners if name in by_name), key=lambda n: -owners[n])
        if len(holding) >= 2 or (holding and time.monotonic() > deadline):
            break
        if time.monotonic() > deadline + within:
            raise SystemExit("no run was ever in flight: is --run-wait too short?")
        time.sleep(0.02)
    kill = by_name[holding[0]]
    pause = by_name[holding[1]] if len(holding) > 1 else next(r for r in replicas if r is not kill)
    return kill, pause


def converged(db: Schema, workflows: int) -> bool:
    running = db.scalar("select count(*) from runs where status = 'running'")
    done = db.scalar(
        "select count(*) from workflow_status where status = 'Converged' and name like 'eo-%%'"
    )
    return running == 0 and done == workflows


def count(db: Schema, revision: str, workflows: int) -> tuple[int, int, int]:
    """(doubles, lost, resumed) as the module docstring defines them."""
    finished_twice = db.scalar(
        "select count(*) from (select run_id from journal where kind = 'run_finished'"
        " group by run_id having count(*) > 1) as twice"
    )
    extra_successes = db.scalar(
        "select coalesce(sum(n - 1), 0) from (select workflow, count(*) as n from runs"
        " where status = 'succeeded' and revision = %s and workflow like 'eo-%%'"
        " group by workflow) as per_workflow",
        revision,
    )
    succeeded = db.scalar(
        "select count(distinct workflow) from runs"
        " where status = 'succeeded' and revision = %s and workflow like 'eo-%%'",
        revision,
    )
    resumed = db.scalar("select count(*) from runs where attempt > 1")
    return finished_twice + extra_successes, workflows - succeeded, resumed


def one_round(number: int, args: argparse.Namespace, work: Path) -> Round:
    ttl = args.lease_ttl
    root = work / f"round-{number}"
    repo, out = root / "repo", root / "out"
    init_repo(repo)
    out.mkdir()
    for n in range(args.workflows):
        name = f"eo-{n:04d}"
        text = file_workflow(name, out / name, "x", wait=f"{int(args.run_wait * 1000)}ms")
        (repo / f"{name}.yaml").write_text(text)
    revision = commit_all(repo, "workload")
    flags = [
        "--lease-ttl",
        f"{ttl:g}s",
        "--poll-interval",
        "500ms",
        "--grace-period",
        "1s",
        "--max-concurrent-runs",
        str(args.max_concurrent_runs),
        "--log-level",
        "info",
    ]
    with schema("bench_exactly_once") as db:
        store = db.store_url(idle_in_transaction_ms=1000)
        replicas = start_replicas(REPLICAS, repo=repo, root=root, store=store, flags=flags)
        try:
            start = time.monotonic()
            wait_started(replicas)
            kill, pause = choose_victims(db, replicas, within=30)
            kill.proc.send_signal(signal.SIGKILL)
            pause.proc.send_signal(signal.SIGSTOP)
            time.sleep(args.pause)  # the pause is the experiment: longer than the lease TTL
            pause.proc.send_signal(signal.SIGCONT)
            kill.proc.wait(10)
            deadline = time.monotonic() + args.timeout
            while not converged(db, args.workflows) and time.monotonic() < deadline:
                for replica in replicas:
                    if replica is not kill and replica.proc.poll() is not None:
                        raise SystemExit(f"{replica.name} exited; see {replica.log}")
                time.sleep(0.1)
            seconds = time.monotonic() - start
            time.sleep(2 * ttl)  # a window for late writes of the woken replica to land
        finally:
            stop_all(replicas)
        doubles, lost, resumed = count(db, revision, args.workflows)
    refused = sum(1 for r in replicas for e in r.events() if e.get("error") == "LeaseLost")
    return Round(number, seconds, kill.name, pause.name, doubles, lost, resumed, refused)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--workflows", type=int, default=300)
    parser.add_argument("--run-wait", type=float, default=0.5, help="seconds each run waits")
    parser.add_argument("--lease-ttl", type=float, default=2.0, help="seconds")
    parser.add_argument(
        "--pause", type=float, default=5.0, help="seconds the paused replica is stopped"
    )
    parser.add_argument("--max-concurrent-runs", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to converge")
    args = parser.parse_args(argv)
    if args.pause <= args.lease_ttl:
        parser.error("--pause must be longer than --lease-ttl (the paused replica must lose)")
    print(
        f"{REPLICAS} replicas, {args.workflows} workflows (file.write, then {args.run_wait:g}s "
        f"in an after: state), lease TTL {args.lease_ttl:g}s, --max-concurrent-runs "
        f"{args.max_concurrent_runs}; each round: SIGKILL one replica, SIGSTOP another for "
        f"{args.pause:g}s",
        flush=True,
    )
    header = (
        f"{'round':>5}  {'seconds':>7}  {'killed':>7}  {'paused':>7}  "
        f"{'resumed':>7}  {'LeaseLost':>9}  {'doubles':>7}  {'lost':>4}"
    )
    print(header, flush=True)
    rounds = []
    with tempfile.TemporaryDirectory(prefix="bench-exactly-once-") as tmp:
        for number in range(1, args.rounds + 1):
            r = one_round(number, args, Path(tmp))
            rounds.append(r)
            print(
                f"{r.number:>5}  {r.seconds:>7.1f}  {r.killed:>7}  {r.paused:>7}  "
                f"{r.resumed:>7}  {r.refused:>9}  {r.doubles:>7}  {r.lost:>4}",
                flush=True,
            )
    doubles = sum(r.doubles for r in rounds)
    lost = sum(r.lost for r in rounds)
    resumed = sum(r.resumed for r in rounds)
    refused = sum(r.refused for r in rounds)
    print(
        f"total: {len(rounds)} rounds, {len(rounds) * args.workflows} workflows, "
        f"{resumed} runs resumed, {refused} LeaseLost warnings, "
        f"{doubles} doubles, {lost} lost"
    )
    return 1 if doubles or lost else 0


if __name__ == "__main__":
    sys.exit(main())
