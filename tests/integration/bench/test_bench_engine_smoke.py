"""bench/engine.py runs end to end at a tiny size and prints its full table.

A smoke test only: it checks the benchmark still drives the engine and both peer libraries to
the end of their machines, in its steady loops and its burst runs, and reports every row, never
how fast anything is.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[3] / "bench" / "engine.py"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _table_rows(stdout: str) -> list[list[str]]:
    """The data lines of the table (between the dashed rule and the blank line after it)."""
    lines = stdout.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("---"))
    rows: list[list[str]] = []
    for line in lines[rule + 1 :]:
        if not line.strip():
            break
        rows.append([cell for cell in line.split("  ") if cell.strip()])
    return rows


def test_tiny_run_prints_one_row_per_subject_with_rates_and_ratios() -> None:
    done = _run("--states", "20", "--items", "50", "--repeat", "1", "--steady", "100")

    assert done.returncode == 0, done.stderr
    rows = _table_rows(done.stdout)
    subjects = [(row[0].strip(), row[1].strip()) for row in rows]
    steady = "steady: linear machine, 20 states, loop of 100 transitions"
    steady_fan = "steady: foreach, 50 items, loop of 2 runs"
    machine = "burst: linear machine, 20 states"
    fan = "burst: foreach, 50 items, concurrency 100"
    assert subjects == [
        (steady, "reconciler engine"),
        (steady, "transitions"),
        (steady, "python-statemachine"),
        (steady_fan, "reconciler engine"),
        (steady_fan, "asyncio.gather+Semaphore"),
        (machine, "reconciler engine"),
        (machine, "reconciler engine, first run"),
        (machine, "transitions"),
        (machine, "python-statemachine"),
        (fan, "reconciler engine"),
        (fan, "asyncio.gather+Semaphore"),
    ]
    for row in rows:
        rate = float(row[2].replace(",", ""))
        assert rate > 0
        assert row[3].strip() in {"transitions/s", "items/s"}
        assert row[4].strip().endswith("x")
    # each block's reference is itself at 1.00x: the faster peer, and the gather baseline
    for peers in (rows[1:3], rows[7:9]):
        assert max(float(r[4].rstrip("x")) for r in peers) == 1.0
    assert rows[4][4].strip() == "1.00x"
    assert rows[10][4].strip() == "1.00x"
    # the engine's steady loop is whole runs of the machine: 6 runs of 19 transitions
    assert "114 transitions in 6 runs" in rows[0][5]


def test_output_states_the_configuration_and_that_the_engine_journals() -> None:
    done = _run("--states", "5", "--items", "3", "--repeat", "1", "--steady", "10")

    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"python {sys.version_info.major}.{sys.version_info.minor}" in out
    assert "cores" in out
    assert "transitions " in out and "python-statemachine " in out  # peer versions
    assert "--states 5 --items 3 --repeat 1 --steady 10" in out
    assert "journals every transition" in out
    assert "garbage collector on and never run by hand" in out  # how the steady rows are timed


def test_steady_loops_can_be_left_out() -> None:
    done = _run("--states", "5", "--items", "3", "--repeat", "1", "--steady", "0")

    assert done.returncode == 0, done.stderr
    subjects = [row[0] for row in _table_rows(done.stdout)]
    assert subjects and not any(s.startswith("steady") for s in subjects)


def test_a_machine_too_small_to_transition_is_refused() -> None:
    done = _run("--states", "1", "--repeat", "1")

    assert done.returncode != 0
    assert "--states must be at least 2" in done.stderr
