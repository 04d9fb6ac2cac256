"""`reconciler run` on a plain directory holding files meant to stall, flood or lead it out.

A FIFO named ``*.yaml`` must not block the fetch (nor, through the stuck thread, the daemon's
exit on SIGTERM); a symlink to ``/dev/zero`` must not be read until the daemon dies of
``MemoryError``; a symlink to a workflow outside the directory must not load it. Each is
reported as a problem of its file while the good workflow converges.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess, run_args, spawn
from tests.support.hostile import plant_hostile_files, release_fifo_readers
from tests.support.waiting import until
from tests.support.workflows import file_workflow_yaml

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def watch(tmp_path: Path) -> Iterator[Callable[[Path], DaemonProcess]]:
    """Start ``reconciler run`` on a directory (with a good workflow written into it), once the
    test has planted its files; killed at teardown if still running."""
    started: list[DaemonProcess] = []

    def start(watched: Path) -> DaemonProcess:
        (watched / "good.yaml").write_text(file_workflow_yaml("good", good_output(tmp_path), "ok"))
        daemon = spawn(
            run_args(watched, tmp_path / "data", "--poll-interval", "500ms"),
            cwd=tmp_path,
            log=tmp_path / "daemon.log",
            env={"RECONCILER_LISTEN": "127.0.0.1:0"},
        )
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.kill()


def good_output(tmp_path: Path) -> Path:
    return tmp_path / "out" / "good.txt"


def wait_converged(daemon: DaemonProcess, tmp_path: Path) -> None:
    """Until the good workflow's output appears, failing if the daemon dies first."""
    path = good_output(tmp_path)
    until(lambda: daemon.alive() and path.exists(), 60, f"{path} to appear", interval=0.05)


def problems(daemon: DaemonProcess) -> list[str]:
    """The events the daemon logged, as text."""
    return [str(e.get("event")) for e in daemon.events()]


def rss_bytes(daemon: DaemonProcess) -> int:
    for line in Path(f"/proc/{daemon.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def converge_and_stop(
    watch: Callable[[Path], DaemonProcess], tmp_path: Path, watched: Path, fifo: Path
) -> DaemonProcess:
    """Start the daemon on ``watched``, wait for the good workflow, stop it: it must exit 0
    although ``fifo`` sits among its files."""
    try:
        daemon = watch(watched)
        wait_converged(daemon, tmp_path)
        assert daemon.stop() == 0, daemon.log_text()
    finally:
        release_fifo_readers(fifo)
    return daemon


def test_sigterm_stops_promptly_a_daemon_watching_a_directory_with_a_fifo(
    tmp_path: Path, watch: Callable[[Path], DaemonProcess]
) -> None:
    # A reader that opens the FIFO blocks for ever: the good workflow never loads, and the
    # stuck thread keeps the process alive after SIGTERM (it logs "stopped", then hangs).
    watched = tmp_path / "wf"
    watched.mkdir()
    os.mkfifo(watched / "x.yaml")
    daemon = converge_and_stop(watch, tmp_path, watched, watched / "x.yaml")
    assert "file x.yaml:1:1: a FIFO, not a regular file; refused without opening it" in (
        problems(daemon)
    )


def test_every_hostile_file_is_a_logged_problem_and_the_good_workflow_converges(
    tmp_path: Path, watch: Callable[[Path], DaemonProcess]
) -> None:
    watched = tmp_path / "wf"
    planted = plant_hostile_files(watched, outside=tmp_path / "outside")
    daemon = converge_and_stop(watch, tmp_path, watched, watched / "fifo.yaml")

    events = problems(daemon)
    for name, reason in planted.items():
        assert any(e.startswith(f"file {name}:1:1: ") and reason in e for e in events), name
    assert not (tmp_path / "outside" / "stolen.txt").exists(), "the escaping symlink was followed"


def test_a_symlink_to_dev_zero_neither_kills_nor_floods_the_daemon(
    tmp_path: Path, watch: Callable[[Path], DaemonProcess]
) -> None:
    watched = tmp_path / "wf"
    watched.mkdir()
    (watched / "zero.yaml").symlink_to("/dev/zero")
    daemon = watch(watched)

    wait_converged(daemon, tmp_path)
    assert rss_bytes(daemon) < 512 * 1024 * 1024
    assert any(
        e.startswith("file zero.yaml:1:1: symlink to a file outside") for e in problems(daemon)
    )
    assert "MemoryError" not in daemon.log_text()
    assert daemon.stop() == 0, daemon.log_text()
