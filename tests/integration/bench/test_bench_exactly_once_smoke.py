"""bench/exactly_once.py runs one small round end to end and counts no double and no lost run.

A smoke test: three real daemon processes on the real PostgreSQL and a real git repository, one
killed and one paused past its lease, as in every round of the benchmark; it checks the round
is reported and that the store held exactly one successful run of every workflow, never how long
the round took.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_server
from tests.support.postgres import PG_HOST, PG_PORT

BENCH = Path(__file__).resolve().parents[3] / "bench" / "exactly_once.py"

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(150)]


def test_one_small_round_with_a_killed_and_a_paused_replica_has_no_double_and_no_loss() -> None:
    require_server(PG_HOST, PG_PORT, "PostgreSQL")
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--rounds",
            "1",
            "--workflows",
            "30",
            "--lease-ttl",
            "1.5",
            "--pause",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=140,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["round"])
    assert lines[header].split() == [
        "round",
        "seconds",
        "killed",
        "paused",
        "resumed",
        "LeaseLost",
        "doubles",
        "lost",
    ]
    row = lines[header + 1].split()
    assert row[0] == "1" and row[2] != row[3]  # one replica killed, another paused
    assert row[-2:] == ["0", "0"]
    total = re.search(r"total: 1 rounds, 30 workflows, .* (\d+) doubles, (\d+) lost", done.stdout)
    assert total is not None and total.groups() == ("0", "0"), done.stdout
