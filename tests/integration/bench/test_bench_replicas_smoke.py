"""bench/replicas.py runs end to end at a tiny size and prints both of its tables.

A smoke test: real daemon processes on the real PostgreSQL and a real git repository, one and two
replicas, in the CPU-bound and the I/O-bound mode; it checks that every run of the workload ran
once and each row is reported with its ratio to one replica, never how fast anything is.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_server
from tests.support.postgres import PG_HOST, PG_PORT

BENCH = Path(__file__).resolve().parents[3] / "bench" / "replicas.py"

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(180)]


def test_tiny_run_reports_runs_per_second_for_each_mode_and_replica_count() -> None:
    require_server(PG_HOST, PG_PORT, "PostgreSQL")
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--workflows",
            "8",
            "--io-workflows",
            "8",
            "--io-wait",
            "100ms",
            "--replicas",
            "1",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    tables = done.stdout.strip().split("\n\n")
    assert len(tables) == 2
    for mode, table in zip(["cpu", "io"], tables, strict=True):
        lines = table.splitlines()
        assert lines[0].startswith(f"{mode}-bound: 8 workflows")
        assert lines[0].endswith(f"{os.cpu_count()} cores")
        assert lines[1].split()[:3] == ["replicas", "seconds", "runs/s"]
        rows = [line.split() for line in lines[2:]]
        assert [row[0] for row in rows] == ["1", "2"]
        assert rows[0][3] == "1.00x" and rows[1][3].endswith("x")
        # every workflow ran once (the warm-up workflow too), on whichever replica
        assert int(rows[0][5]) == 9
        assert sum(int(n) for n in rows[1][5:] if n != "/") == 9
