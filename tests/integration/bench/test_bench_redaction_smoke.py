"""bench/redaction.py runs at a tiny size and prints one row per number of secrets.

A smoke test only: it checks the table's shape and that the filter masked the line holding a
secret (the script asserts it), never how fast anything is.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[3] / "bench" / "redaction.py"


def test_tiny_run_reports_a_row_for_each_number_of_secrets() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--records", "50", "--sizes", "0,3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()[2:]]
    assert [row[0] for row in rows] == ["0", "3"]
    assert rows[0][-1] == "-" and float(rows[1][-1]) > 0
