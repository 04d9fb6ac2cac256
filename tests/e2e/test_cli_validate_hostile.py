"""``reconciler validate DIR`` reads a directory exactly as the daemon's directory source does.

On a directory of hostile files (a FIFO, a socket, symlinks to ``/dev/zero``, to a workflow
outside and to nothing, a file over the size limit) it returns promptly, reports each as an
error of that file, with the reason the source gives, and opens none of them.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

from reconciler.sources import open_source
from tests.support.daemon import CLI, without_settings
from tests.support.hostile import plant_hostile_files, release_fifo_readers


def test_validate_reports_each_hostile_file_as_the_directory_source_does(
    tmp_path: Path,
) -> None:
    watched = tmp_path / "wf"
    planted = plant_hostile_files(watched, outside=tmp_path / "outside")
    try:
        proc = subprocess.run(
            [*CLI, "validate", str(watched), "--output", "json"],
            cwd=tmp_path,
            env=without_settings(),
            capture_output=True,
            text=True,
            timeout=120,  # a safety bound: a reader blocked on the FIFO would never return
            check=False,
        )
        source = open_source(str(watched), data_dir=tmp_path / "data")
        revision = asyncio.run(source.fetch())
    finally:
        release_fifo_readers(watched / "fifo.yaml")

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    reported = {
        problem["path"]: problem["message"]
        for problem in json.loads(proc.stdout)["problems"]
        if problem["severity"] == "error"
    }
    assert revision is not None
    assert reported == {f"{watched}/{name}": reason for name, reason in revision.refused.items()}
    assert set(revision.refused) == set(planted)
    for name, reason in planted.items():
        assert reason in reported[f"{watched}/{name}"]
