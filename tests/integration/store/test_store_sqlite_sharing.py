"""A SQLite store shared with other processes keeps every commit: asking the store what is wrong
with its file (``/readyz``) must not drop SQLite's locks, or another process closing its last
connection deletes the WAL under the daemon, whose later commits then go to a deleted file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from reconciler.engine.journal import RunRecord
from reconciler.store import Store

READ = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1])
print(",".join(sorted(r[0] for r in connection.execute("SELECT id FROM runs"))))
connection.close()
"""


def read_in_another_process(db: Path) -> str:
    """Open the database in another process, read the run ids, close (its last connection)."""
    done = subprocess.run(
        [sys.executable, "-c", READ, str(db)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


async def test_commits_after_a_readiness_check_survive_another_process_closing_the_file(
    tmp_path: Path,
) -> None:
    db = tmp_path / "data" / "store.db"
    store = await Store.open(str(db), data_dir=tmp_path / "data")
    try:
        await store.run_started(RunRecord(id="before", workflow="wf"))
        assert await store.problem() is None
        assert read_in_another_process(db) == "before"
        await store.run_started(RunRecord(id="after", workflow="wf"))
        assert read_in_another_process(db) == "after,before"
    finally:
        await store.close()
    assert read_in_another_process(db) == "after,before"
