"""`reconciler run` on a plain directory holding files meant to stall, flood or lead it out.

A FIFO named ``*.yaml`` must not block the fetch (nor, through the stuck thread, the daemon's
exit on SIGTERM); a symlink to ``/dev/zero`` must not be read until the daemon dies of
``MemoryError``; a symlink to a workflow outside the directory must not load it. Each is
reported as a problem of its file while the good workflow converges.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import run_command, without_settings
from tests.support.hostile import plant_hostile_files, release_fifo_readers
from tests.support.waiting import until
from tests.support.workflows import file_workflow_yaml

pytestmark = pytest.mark.timeout(120)


class Daemon:
    """One ``reconciler run`` child on ``watched``, logging to ``tmp_path / "daemon.log"``."""

    def __init__(self, tmp_path: Path, watched: Path) -> None:
        self.log_file = tmp_path / "daemon.log"
        env = without_settings()
        env["RECONCILER_LISTEN"] = "127.0.0.1:0"
        with self.log_file.open("wb") as log:
            self.proc = subprocess.Popen(
                run_command(watched, tmp_path / "data", "--poll-interval", "500ms"),
                cwd=tmp_path,
                stdout=log,
                stderr=log,
                env=env,
            )

    def log(self) -> str:
        return self.log_file.read_text()

    def events(self) -> list[str]:
        return [
            str(json.loads(line).get("event"))
            for line in self.log().splitlines()
            if line.startswith("{")
        ]

    def wait_for_file(self, path: Path, *, within: float = 60) -> None:
        """Poll until the good workflow's output appears, failing if the daemon dies first."""

        def appeared() -> bool:
            assert self.proc.poll() is None, f"the daemon exited early:\n{self.log()}"
            return path.exists()

        until(appeared, within, f"{path} to appear", interval=0.05)

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait(10)


def test_sigterm_stops_promptly_a_daemon_watching_a_directory_with_a_fifo(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    # A reader that opens the FIFO blocks for ever: the good workflow never loads, and the
    # stuck thread keeps the process alive after SIGTERM (it logs "stopped", then hangs).
    watched, out = tmp_path / "wf", tmp_path / "out"
    watched.mkdir()
    os.mkfifo(watched / "x.yaml")
    (watched / "good.yaml").write_text(file_workflow_yaml("good", out / "good.txt", "ok"))
    try:
        daemon = Daemon(tmp_path, watched)
        daemons.append(daemon)
        daemon.wait_for_file(out / "good.txt")

        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(20) == 0, daemon.log()
    finally:
        release_fifo_readers(watched / "x.yaml")
    assert "file x.yaml:1:1: a FIFO, not a regular file; refused without opening it" in (
        daemon.events()
    )


def test_every_hostile_file_is_a_logged_problem_and_the_good_workflow_converges(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    watched, out = tmp_path / "wf", tmp_path / "out"
    planted = plant_hostile_files(watched, outside=tmp_path / "outside")
    (watched / "good.yaml").write_text(file_workflow_yaml("good", out / "good.txt", "ok"))
    try:
        daemon = Daemon(tmp_path, watched)
        daemons.append(daemon)
        daemon.wait_for_file(out / "good.txt")
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(20) == 0, daemon.log()
    finally:
        release_fifo_readers(watched / "fifo.yaml")

    events = daemon.events()
    for name, reason in planted.items():
        assert any(e.startswith(f"file {name}:1:1: ") and reason in e for e in events), name
    assert not (tmp_path / "outside" / "stolen.txt").exists(), "the escaping symlink was followed"


def test_a_symlink_to_dev_zero_neither_kills_nor_floods_the_daemon(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    watched, out = tmp_path / "wf", tmp_path / "out"
    watched.mkdir()
    (watched / "zero.yaml").symlink_to("/dev/zero")
    (watched / "good.yaml").write_text(file_workflow_yaml("good", out / "good.txt", "ok"))
    daemon = Daemon(tmp_path, watched)
    daemons.append(daemon)

    daemon.wait_for_file(out / "good.txt")

    assert daemon.rss_bytes() < 512 * 1024 * 1024
    assert any(
        e.startswith("file zero.yaml:1:1: symlink to a file outside") for e in daemon.events()
    )
    assert "MemoryError" not in daemon.log()
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(20) == 0, daemon.log()
