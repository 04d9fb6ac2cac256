"""The daemon as a child process: how tests spell ``reconciler run``, start it and stop it.

End-to-end tests start the real daemon (``reconciler.cli.run``) as a subprocess of this interpreter, so no console script on PATH is needed;
:func:`run_command` is its command line, :func:`without_settings` an environment in which only
the test's own flags and variables configure it. :func:`spawn` starts any ``reconciler`` command
as a :class:`DaemonProcess` logging to a file, :func:`start` a ``reconciler run`` and waits until
it has started, and :func:`running` does that for the length of a ``with`` block and stops it
(SIGTERM) at the end; :func:`statuses` reads what it stored. Each test passes its own flags and environment. Repositories come from
:mod:`tests.support.repos`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from reconciler.store import Store, WorkflowStatusRecord
from tests.support.net import free_port
from tests.support.waiting import until

CLI = (sys.executable, "-c", "from reconciler.cli import main; main()")
"""The ``reconciler`` command, run by this interpreter; append a command and its arguments."""

STARTED = "reconciler started"
"""What the daemon logs once it has created and migrated its store and begun its loop."""


def run_args(repo: Path | str, data_dir: Path, *flags: str) -> list[str]:
    """The arguments of ``reconciler run`` on ``repo`` keeping its data in ``data_dir``."""
    return ["run", "--repo", str(repo), "--data-dir", str(data_dir), *flags]


def run_command(repo: Path | str, data_dir: Path, *flags: str) -> list[str]:
    """``reconciler run`` on ``repo`` keeping its data in ``data_dir``, with more ``flags``."""
    return [*CLI, *run_args(repo, data_dir, *flags)]


def without_settings() -> dict[str, str]:
    """This process's environment without any ``RECONCILER_*`` variable (no stray daemon setting)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}


def _read(log: Path) -> str:
    return log.read_text(errors="replace") if log.exists() else ""


@dataclass
class DaemonProcess:
    """A ``reconciler`` child process and the file its stdout and stderr are appended to."""

    proc: subprocess.Popen[bytes]
    log: Path
    starts_before: int = 0
    """How many times the log said :data:`STARTED` before this process began (restarts append)."""

    def log_text(self) -> str:
        return _read(self.log)

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines written to :attr:`log` so far, parsed."""
        return [json.loads(line) for line in self.log_text().splitlines() if line.startswith("{")]

    def alive(self) -> bool:
        """True while the process runs; fails the test, with the log, once it has exited."""
        assert self.proc.poll() is None, self.log_text()
        return True

    def wait_started(self, *, within: float = 60) -> None:
        """Until this process logs :data:`STARTED` (failing at once, with the log, if it exits).

        Callers may open its store afterwards: the line comes once the store is migrated.
        """
        until(
            lambda: self.alive() and self.log_text().count(STARTED) > self.starts_before,
            within,
            f"the daemon logging to {self.log.name} to start",
            interval=0.05,
        )

    def wait_ready(self, url: str, *, within: float = 60) -> None:
        """Until the daemon's API at ``url`` answers ``/readyz`` with 200 (first revision loaded)."""

        def ready() -> bool:
            try:
                return self.alive() and httpx.get(f"{url}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        until(ready, within, f"the API at {url} to be ready", interval=0.1)

    def terminate(self) -> None:
        """SIGTERM (after SIGCONT, should the test have stopped it), without waiting."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()

    def stop(self, *, within: float = 20) -> int:
        """:meth:`terminate`, then its exit code; a process still running after ``within``
        seconds is killed and the test fails."""
        self.terminate()
        return self.wait(within=within)

    def wait(self, *, within: float = 20) -> int:
        """Its exit code once it exits; still running after ``within`` seconds, it is killed and
        the test fails."""
        try:
            return self.proc.wait(within)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(
                f"the daemon did not exit within {within}s:\n{self.log_text()}"
            ) from None

    def kill(self) -> None:
        """SIGKILL, as a crash: no shutdown, no last journal write."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def spawn(
    args: Sequence[str], *, cwd: Path, log: Path, env: Mapping[str, str] | None = None
) -> DaemonProcess:
    """``reconciler ARGS...`` as a child process appending its output to ``log``.

    Its environment is :func:`without_settings` plus ``env``: only the test configures it.
    """
    before = _read(log).count(STARTED)
    with log.open("ab") as sink:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [*CLI, *args],
            cwd=cwd,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**without_settings(), **(env or {})},
        )
    return DaemonProcess(proc, log, before)


def start(
    repo: Path | str,
    data_dir: Path,
    *flags: str,
    cwd: Path,
    log: Path,
    env: Mapping[str, str] | None = None,
    within: float = 60,
) -> DaemonProcess:
    """``reconciler run`` on ``repo`` with ``flags`` (see :func:`spawn`), once it has started."""
    daemon = spawn(run_args(repo, data_dir, *flags), cwd=cwd, log=log, env=env)
    try:
        daemon.wait_started(within=within)
    except BaseException:
        daemon.kill()
        raise
    return daemon


@contextmanager
def running(
    repo: Path | str,
    data_dir: Path,
    *flags: str,
    cwd: Path,
    log: Path,
    env: Mapping[str, str] | None = None,
) -> Iterator[DaemonProcess]:
    """:func:`start`, then stop it on leaving the block (killed if it ignores SIGTERM)."""
    daemon = start(repo, data_dir, *flags, cwd=cwd, log=log, env=env)
    try:
        yield daemon
    finally:
        if daemon.proc.poll() is None:
            daemon.stop()


async def statuses(data_dir: Path) -> dict[str, WorkflowStatusRecord]:
    """Each workflow's status in the SQLite store of the daemon keeping its data in ``data_dir``."""
    store = await Store.open(None, data_dir=data_dir)
    try:
        return {s.name: s for s in await store.list_statuses()}
    finally:
        await store.close()


def wait_started(log: Path, proc: subprocess.Popen[bytes], *, within: float = 60) -> None:
    """Until the daemon ``proc``, logging to ``log``, says :data:`STARTED` (see
    :meth:`DaemonProcess.wait_started`), for processes started some other way."""
    DaemonProcess(proc, log).wait_started(within=within)


Starter = Callable[[], tuple[DaemonProcess, str]]
"""Starts the daemon of :func:`restartable` (again) and returns it with its base URL."""


@contextmanager
def restartable(
    tmp_path: Path, *flags: str, env: Mapping[str, str] | None = None
) -> Iterator[Starter]:
    """``reconciler run`` on ``tmp_path / "repo"``, keeping its data in ``tmp_path / "data"``,
    with ``flags`` and ``env``: the function yielded starts it on a free port (a second call
    after a ``kill`` is a restart on the same data) and returns it, ready, with its URL. Every
    process still running is killed on leaving."""
    started: list[DaemonProcess] = []

    def start_daemon() -> tuple[DaemonProcess, str]:
        port = free_port()
        process = start(
            tmp_path / "repo",
            tmp_path / "data",
            "--listen",
            f"127.0.0.1:{port}",
            *flags,
            cwd=tmp_path,
            log=tmp_path / "daemon.log",
            env=env,
        )
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        process.wait_ready(url)
        return process, url

    try:
        yield start_daemon
    finally:
        for process in started:
            process.kill()
