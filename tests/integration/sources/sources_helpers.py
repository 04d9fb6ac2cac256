"""Helpers for the source tests: real git repositories (``git init`` in tmp dirs), bare remotes,
a ``git daemon`` on a loopback port, and :func:`running`, a source's loop in the background
delivering revisions to a queue. The fixtures are re-exported by ``conftest.py``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from reconciler.sources import Revision, Source
from tests.support.net import free_port
from tests.support.waiting import until

T = TypeVar("T")

GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
}


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` and return its stdout; fail the test on a non-zero exit."""
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout


@dataclass
class WorkRepo:
    """A non-bare repository the test commits to."""

    path: Path

    def write(self, files: dict[str, str | None]) -> None:
        """Write (or delete, for None) files in the working tree, without committing."""
        for name, content in files.items():
            target = self.path / name
            if content is None:
                target.unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content)

    def commit(self, files: dict[str, str | None], message: str = "change") -> str:
        """Write the files, commit everything, and return the new commit's sha."""
        self.write(files)
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "--allow-empty", "-m", message)
        return self.head()

    def head(self, ref: str = "HEAD") -> str:
        return git(self.path, "rev-parse", ref).strip()

    def push(self, branch: str = "main") -> None:
        git(self.path, "push", "-q", "origin", f"HEAD:refs/heads/{branch}")


def init_repo(path: Path, *, branch: str = "main") -> WorkRepo:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", branch)
    git(path, "config", "user.name", "Test Author")
    git(path, "config", "user.email", "author@example.test")
    git(path, "config", "commit.gpgsign", "false")
    return WorkRepo(path)


@pytest.fixture
def work(tmp_path: Path) -> WorkRepo:
    """A fresh repository on branch ``main`` with no commits."""
    return init_repo(tmp_path / "work")


@dataclass
class Remote:
    """A bare repository ``<base>/repo.git`` that ``work`` pushes to."""

    base: Path
    bare: Path
    work: WorkRepo

    @property
    def file_url(self) -> str:
        return self.bare.as_uri()


@pytest.fixture
def remote(tmp_path: Path, work: WorkRepo) -> Remote:
    base = tmp_path / "served"
    bare = base / "repo.git"
    base.mkdir()
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(work.path, "remote", "add", "origin", str(bare))
    return Remote(base=base, bare=bare, work=work)


class GitDaemon:
    """``git daemon`` serving ``base_path`` on a loopback port; can be stopped and restarted."""

    def __init__(self, base_path: Path) -> None:
        self.base_path = base_path
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "git",
                "daemon",
                "--reuseaddr",
                "--export-all",
                f"--base-path={self.base_path}",
                "--listen=127.0.0.1",
                f"--port={self.port}",
                str(self.base_path),
            ],
            env=GIT_ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # `git daemon` runs git-daemon as a child: give them their own process group so
            # stop() can end exactly these processes.
            start_new_session=True,
        )
        process = self.process

        def listening() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                if process.poll() is not None:
                    raise AssertionError("git daemon exited at start") from None
                return False

        until(listening, 10, "git daemon to listen", interval=0.05)

    def stop(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def git_daemon(remote: Remote) -> Iterator[GitDaemon]:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    daemon = GitDaemon(remote.base)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


def texts(revision: Revision) -> dict[str, str]:
    return {path: data.decode() for path, data in revision.files.items()}


async def next_revision(queue: asyncio.Queue[Revision], *, within: float = 10.0) -> Revision:
    """The next revision a running source delivered (``within`` is a generous safety limit)."""
    return await asyncio.wait_for(queue.get(), timeout=within)


async def revision_after(
    queue: asyncio.Queue[Revision],
    change: Callable[[int], T],
    *,
    within: float = 10.0,
    every: float = 0.5,
) -> tuple[Revision, list[T]]:
    """Make ``change`` until a running source delivers a revision; that revision and what each
    call of ``change`` returned.

    ``change`` is called (in a worker thread) with 1, 2, ... and must change something each time.
    A watcher may not be watching yet when the first change lands: repeating the change every
    ``every`` seconds until a revision arrives waits for the revision itself instead of sleeping
    a guessed "long enough for the watcher to start". ``within`` is a safety limit.
    """
    made: list[T] = []
    deadline = time.monotonic() + within
    while True:
        made.append(await asyncio.to_thread(change, len(made) + 1))
        try:
            return await asyncio.wait_for(queue.get(), timeout=every), made
        except TimeoutError:
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"no revision after {len(made)} changes in {within}s"
                ) from None


@asynccontextmanager
async def running(source: Source) -> AsyncIterator[asyncio.Queue[Revision]]:
    """Run ``source`` in the background, yielding the queue of delivered revisions."""
    seen: asyncio.Queue[Revision] = asyncio.Queue()
    stop = asyncio.Event()

    async def on_revision(revision: Revision) -> None:
        await seen.put(revision)

    task = asyncio.create_task(source.run(on_revision, stop=stop))
    try:
        yield seen
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
