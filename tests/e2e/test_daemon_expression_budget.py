"""The daemon keeps answering while workflows evaluate the costliest CEL they may write.

A real ``reconciler run`` follows a repository with two workflows: ``spin`` hops between two
states forever, each hop deciding on three nested comprehensions over 99 items (just under the
default budget, about half a second of CPU, so evaluated in a worker thread) until its run's
``timeout:`` ends it; ``costly`` asks for the same over 200 items, which the budget refuses at
once (``ExpressionBudgetExceeded``, routed by ``on:``), on every retry. Meanwhile ``/healthz`` is
polled: every answer must come back quickly, through the first runs and the retries (the
daemon retries a failed workflow after 10 s).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support.daemon import run_command, without_settings
from tests.support.repos import commit, init_repo
from tests.support.waiting import until

pytestmark = pytest.mark.timeout(120)

EXPENSIVE = "inputs.l.all(a, inputs.l.all(b, inputs.l.all(c, a + b + c >= 0)))"

SPIN = f"""\
apiVersion: reconciler/v1
kind: Workflow
metadata:
  name: spin
spec:
  timeout: 6s
  inputs:
    l: {list(range(99))}
  start: ping
  states:
    ping:
      transitions:
        - {{on: [Timeout], to: stopped}}
        - {{to: pong, when: "{EXPENSIVE}"}}
        - {{to: stopped}}
    pong:
      transitions:
        - {{to: ping, when: "{EXPENSIVE}"}}
        - {{to: stopped}}
    stopped: {{end: failure}}
"""

COSTLY = f"""\
apiVersion: reconciler/v1
kind: Workflow
metadata:
  name: costly
spec:
  inputs:
    l: {list(range(200))}
  start: decide
  states:
    decide:
      transitions:
        - {{on: [ExpressionBudgetExceeded], to: refused}}
        - {{to: done, when: "{EXPENSIVE}"}}
        - {{to: done}}
    done: {{end: success}}
    refused: {{end: failure}}
"""


def finished_runs(log: str) -> dict[str, int]:
    """How many runs of each workflow the daemon's JSON log says finished."""
    counts: dict[str, int] = {}
    for line in log.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == "run finished":
                name = str(event.get("workflow"))
                counts[name] = counts.get(name, 0) + 1
    return counts


def test_healthz_answers_quickly_while_workflows_evaluate_the_costliest_expressions(
    tmp_path: Path,
) -> None:
    repo = init_repo(tmp_path / "repo")
    (repo / "spin.yaml").write_text(SPIN)
    (repo / "costly.yaml").write_text(COSTLY)
    commit(repo, "costly expressions")
    log_file = tmp_path / "daemon.log"
    env = without_settings()
    env["RECONCILER_LISTEN"] = "127.0.0.1:0"
    with log_file.open("wb") as log:
        proc = subprocess.Popen(
            run_command(repo, tmp_path / "data", "--poll-interval", "500ms"),
            cwd=tmp_path,
            stdout=log,
            stderr=log,
            env=env,
        )
    try:

        def listening() -> str | None:
            assert proc.poll() is None, log_file.read_text()
            found = re.search(r"API listening on (http://[0-9.]+:[0-9]+)", log_file.read_text())
            return found.group(1) if found else None

        url = until(listening, 30, "the daemon to log its API address", interval=0.05)

        latencies: list[float] = []
        deadline = time.monotonic() + 80
        with httpx.Client(base_url=url, timeout=10) as client:
            while True:
                text = log_file.read_text()
                finished = finished_runs(text)
                if finished.get("spin", 0) >= 1 and finished.get("costly", 0) >= 2:
                    break  # spin's deadline ended it; costly was refused, retried, refused again
                assert time.monotonic() < deadline, text[-4000:]
                started = time.perf_counter()
                response = client.get("/healthz")
                latencies.append(time.perf_counter() - started)
                assert response.status_code == 200
                time.sleep(0.02)  # time passing is the test: sample /healthz all along the runs

        print(f"healthz: {len(latencies)} answers, max {max(latencies) * 1000:.1f} ms")
        assert len(latencies) > 50
        assert max(latencies) < 1.0
        assert "pong" in text and "deadline" in text  # spin hopped, and its timeout ended it
    finally:
        proc.terminate()
        proc.wait(30)
