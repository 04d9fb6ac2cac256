"""bench/cli.py runs at a tiny size and prints every row of its table (wall times, CPU time)
with a target and verdict.

A smoke test only: it starts the real ``reconciler`` console script the benchmark times, and
checks each figure is reported, never how fast anything is.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "cli.py"

pytestmark = pytest.mark.timeout(180)


def test_tiny_run_reports_each_command_with_its_target_and_a_verdict() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--repeat", "1", "--workflows", "3"],
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert done.returncode in (0, 1), done.stderr  # 1: a target missed, still a full table
    lines = done.stdout.splitlines()
    rows = {line[:52].strip(): line[52:].split() for line in lines[2:] if line.strip()}
    assert rows["python -c pass"][-1] == "info"
    assert rows["reconciler --version"][-1] == "info"
    for label, target in [
        ("reconciler --help", "0.30"),
        ("reconciler validate (one file)", "0.30"),
        ("reconciler apply (3 workflows, nothing to do)", "0.50"),
    ]:
        median, _s, fastest, _s2, cpu, _s3, shown, _s4, verdict = rows[label]
        assert float(median) >= float(fastest) > 0 and float(cpu) > 0
        assert shown == target and verdict in ("PASS", "MISS")
    assert "cores" in lines[-1]
