"""Replica benchmark: runs per second with 1, 2 and 3 daemons sharing one PostgreSQL.

The same workload for each replica count: ``--workflows`` cheap workflows (one ``file.write``
state, no probe, so each runs exactly once per revision) committed at once to a local git
repository that 1, 2 or 3 real ``reconciler run`` processes already watch, all on one fresh
PostgreSQL schema. The clock starts when the commit returns and stops when the store holds a
succeeded run of every workflow at that revision; "runs/s" is workflows / seconds. The table also
shows how the runs split over the replicas (from their logs) and how many lease claims the store
counted (the sum of fencing tokens: every claim after a release takes the lease over, so the
token counts claims), i.e. what the coordination cost.

Run ``python bench/replicas.py`` (PostgreSQL at 127.0.0.1:5432, database ``test``; about a minute);
``--workflows`` and ``--max-concurrent-runs`` change the workload. Figures are recorded in
``bench/README.md``. On a 2-core machine the replicas share the cores with PostgreSQL, so extra
replicas show the coordination overhead rather than a speed-up; with a core per replica, the run
rate grows with the replicas until PostgreSQL is the bottleneck.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg

PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"

WORKFLOW = """\
apiVersion: reconciler/v1
kind: Workflow
metadata: {{name: {name}}}
spec:
  interval: 1h
  inputs: {{path: "{path}", content: "{content}"}}
  start: write
  states:
    write:
      action:
        plugin: file.write
        with: {{path: "${{{{ inputs.path }}}}", content: "${{{{ inputs.content }}}}"}}
      next: done
      onError: failed
    done: {{end: success}}
    failed: {{end: failure}}
"""


@dataclass
class Result:
    replicas: int
    workflows: int
    seconds: float
    split: list[int]
    claims: int

    @property
    def rate(self) -> float:
        return self.workflows / self.seconds


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Bench", "-c", "user.email=bench@example.test", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def started_runs(log_file: Path) -> int:
    count = 0
    for line in log_file.read_text(errors="replace").splitlines():
        if line.startswith("{") and "starting run" in json.loads(line).get("event", ""):
            count += 1
    return count


def measure(replicas: int, workflows: int, max_concurrent: int, work: Path) -> Result:
    schema = f"bench_replicas_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    store = f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    dsn = f"{PG_ADMIN_DSN} options='-csearch_path={schema}'"
    root = work / f"r{replicas}"
    repo, out = root / "repo", root / "out"
    repo.mkdir(parents=True)
    out.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "warmup.yaml").write_text(WORKFLOW.format(name="warmup", path=out / "w", content="w"))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "warm-up")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        for i in range(replicas):
            log_file = root / f"replica-{i}.log"
            cmd = [
                sys.executable,
                "-c",
                "from reconciler.cli import main; main()",
                "run",
                "--repo",
                str(repo),
                "--data-dir",
                str(root / f"data-{i}"),
                "--store",
                store,
                "--listen",
                f"127.0.0.1:{free_port()}",
                "--poll-interval",
                "200ms",
                "--max-concurrent-runs",
                str(max_concurrent),
                "--replica-id",
                f"bench-{i}",
            ]
            with log_file.open("ab") as log:
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            procs.append((proc, log_file))
        with psycopg.connect(dsn, autocommit=True) as conn:
            deadline = time.monotonic() + 60
            while True:  # every replica up, and the warm-up workflow converged
                up = all("reconciler started" in f.read_text(errors="replace") for _, f in procs)
                ok = up and conn.execute(
                    "select count(*) from runs where status = 'succeeded'"
                ).fetchone() == (1,)
                if ok:
                    break
                if time.monotonic() > deadline or any(p.poll() is not None for p, _ in procs):
                    raise SystemExit(f"replicas did not start; see {root}")
                time.sleep(0.05)
            for n in range(workflows):
                name = f"bench-{n:04d}"
                text = WORKFLOW.format(name=name, path=out / name, content="x")
                (repo / f"{name}.yaml").write_text(text)
            git(repo, "add", "-A")
            git(repo, "commit", "-q", "-m", "workload")
            revision = git(repo, "rev-parse", "HEAD")
            start = time.monotonic()
            while True:
                row = conn.execute(
                    "select count(*) from runs where status = 'succeeded' and revision = %s",
                    (revision,),
                ).fetchone()
                if row is not None and row[0] >= workflows:
                    break
                if time.monotonic() - start > 600:
                    raise SystemExit("the workload did not finish in 10 minutes")
                time.sleep(0.02)
            seconds = time.monotonic() - start
            claims_row = conn.execute(
                "select coalesce(sum(fencing_token), 0) from leases where name like 'workflow:bench-%%'"
            ).fetchone()
            claims = int(claims_row[0]) if claims_row else 0
    finally:
        for proc, _ in procs:
            proc.send_signal(signal.SIGTERM)
        for proc, _ in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
    split = [started_runs(f) for _, f in procs]
    return Result(replicas, workflows, seconds, split, claims)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=300)
    parser.add_argument("--max-concurrent-runs", type=int, default=4)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp:
        for count in args.replicas:
            results.append(measure(count, args.workflows, args.max_concurrent_runs, Path(tmp)))
    print(
        f"{args.workflows} workflows (one file.write each), --max-concurrent-runs "
        f"{args.max_concurrent_runs} per replica, one PostgreSQL, {os.cpu_count()} cores"
    )
    print(f"{'replicas':>8}  {'seconds':>8}  {'runs/s':>7}  {'lease claims':>12}  runs per replica")
    for r in results:
        split = " / ".join(str(n) for n in r.split)
        print(f"{r.replicas:>8}  {r.seconds:>8.2f}  {r.rate:>7.1f}  {r.claims:>12}  {split}")


if __name__ == "__main__":
    main()
