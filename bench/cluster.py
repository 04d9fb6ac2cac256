"""What the replica benchmarks share: a fresh PostgreSQL schema, a git repository of workflows,
and real ``reconciler run`` processes sharing them.

Imported by ``bench/replicas.py`` and ``bench/exactly_once.py``, which are run as scripts (so
``bench/`` is on ``sys.path``). Needs PostgreSQL at 127.0.0.1:5432, database ``test``, trust
authentication for ``postgres`` (what the test suite uses too).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"

FILE_WORKFLOW = """\
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
      next: {after_write}
      onError: failed
{extra}    done: {{end: success}}
    failed: {{end: failure}}
"""


def file_workflow(name: str, path: Path, content: str, *, wait: str | None = None) -> str:
    """A workflow without a probe (so it runs once per revision) that writes ``content`` to
    ``path``; with ``wait`` (``"200ms"``) it then waits that long in a state of its own (an
    ``after:`` transition: a timer, no CPU) before it ends."""
    if wait is None:
        return FILE_WORKFLOW.format(
            name=name, path=path, content=content, after_write="done", extra=""
        )
    extra = f"    hold:\n      transitions: [{{to: done, after: {wait}}}]\n"
    return FILE_WORKFLOW.format(
        name=name, path=path, content=content, after_write="hold", extra=extra
    )


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Bench", "-c", "user.email=bench@example.test", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def init_repo(repo: Path) -> None:
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")


def commit_all(repo: Path, message: str) -> str:
    """Commit everything in ``repo``; returns the new revision."""
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Schema:
    """A PostgreSQL schema of the benchmark's own."""

    name: str

    def store_url(self, *, idle_in_transaction_ms: int | None = None) -> str:
        """The daemons' ``--store``; ``idle_in_transaction_ms`` ends the transactions of a
        paused replica after that long (as docs/scaling.md advises), so its row locks go."""
        options = f"-csearch_path%3D{self.name}"
        if idle_in_transaction_ms is not None:
            options += f"%20-cidle_in_transaction_session_timeout%3D{idle_in_transaction_ms}"
        return f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options={options}"

    @property
    def dsn(self) -> str:
        return f"{PG_ADMIN_DSN} options='-csearch_path={self.name}'"

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            return list(conn.execute(sql, params).fetchall())

    def scalar(self, sql: str, *params: Any) -> int:
        rows = self.query(sql, *params)
        return int(rows[0][0] or 0) if rows else 0


@contextmanager
def schema(prefix: str) -> Iterator[Schema]:
    """A new, empty schema ``<prefix>_<random>``, dropped with its tables on exit."""
    made = Schema(f"{prefix}_{uuid.uuid4().hex[:10]}")
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{made.name}"')
    try:
        yield made
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute("SET lock_timeout = '20s'")
            admin.execute(f'DROP SCHEMA IF EXISTS "{made.name}" CASCADE')


@dataclass
class Replica:
    """One ``reconciler run`` process and its JSON log."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def events(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue
        return found

    def started(self) -> bool:
        return "reconciler started" in self.log.read_text(errors="replace")

    def runs_started(self) -> int:
        return sum("starting run" in e.get("event", "") for e in self.events())


def start_replicas(
    count: int,
    *,
    repo: Path,
    root: Path,
    store: str,
    flags: Sequence[str] = (),
    prefix: str = "bench",
) -> list[Replica]:
    """``count`` daemons on ``repo`` and ``store``, replica ids ``<prefix>-0``..., each with a
    data directory and a log under ``root``, their API on a free loopback port. They run in
    ``root``, their working directory and so the only file root workflows may write under."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    replicas = []
    for i in range(count):
        name = f"{prefix}-{i}"
        log_file = root / f"{name}.log"
        cmd = [
            sys.executable,
            "-c",
            "from reconciler.cli import main; main()",
            "run",
            "--repo",
            str(repo),
            "--data-dir",
            str(root / f"data-{name}"),
            "--store",
            store,
            "--listen",
            f"127.0.0.1:{free_port()}",
            "--replica-id",
            name,
            *flags,
        ]
        with log_file.open("ab") as log:
            proc = subprocess.Popen(cmd, cwd=root, stdout=log, stderr=subprocess.STDOUT, env=env)
        replicas.append(Replica(name, proc, log_file))
    return replicas


def wait_started(replicas: Sequence[Replica], *, within: float = 60) -> None:
    """Until every replica logged that it started (SystemExit if one exits or it takes long)."""
    deadline = time.monotonic() + within
    while not all(r.started() for r in replicas):
        if time.monotonic() > deadline or any(r.proc.poll() is not None for r in replicas):
            raise SystemExit(f"replicas did not start; see {replicas[0].log.parent}")
        time.sleep(0.05)


def stop_all(replicas: Sequence[Replica]) -> None:
    """SIGCONT (in case one is paused) and SIGTERM to every live replica, then wait for each
    (SIGKILL after 20 s)."""
    for replica in replicas:
        if replica.proc.poll() is None:
            replica.proc.send_signal(signal.SIGCONT)
            replica.proc.send_signal(signal.SIGTERM)
    for replica in replicas:
        try:
            replica.proc.wait(20)
        except subprocess.TimeoutExpired:
            replica.proc.kill()
            replica.proc.wait(10)
