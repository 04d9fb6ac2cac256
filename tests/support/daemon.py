"""The daemon as a child process: how tests spell ``reconciler run`` and the environment it gets.

End-to-end tests start the real daemon (``reconciler.cli.run``: sources → snapshot → planner → queue
→ runner → store) as a subprocess of this interpreter, so no console script on PATH is needed;
:func:`run_command` is its command line, :func:`without_settings` an environment in which only
the test's own flags and variables configure it, and :func:`wait_started` waits until it has
started. Repositories come from :mod:`tests.support.repos`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.waiting import until

CLI = (sys.executable, "-c", "from reconciler.cli import main; main()")
"""The ``reconciler`` command, run by this interpreter; append a command and its arguments."""


def run_command(repo: Path, data_dir: Path, *flags: str) -> list[str]:
    """``reconciler run`` on ``repo`` keeping its data in ``data_dir``, with more ``flags``."""
    return [*CLI, "run", "--repo", str(repo), "--data-dir", str(data_dir), *flags]


def without_settings() -> dict[str, str]:
    """This process's environment without any ``RECONCILER_*`` variable (no stray daemon setting)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}


def wait_started(log: Path, proc: subprocess.Popen[bytes], *, within: float = 60) -> None:
    """Until the daemon ``proc``, logging to ``log``, says "reconciler started".

    Fails at once, with the log, if the daemon exits first. Callers may open its store afterwards:
    the daemon logs this line once it has created and migrated the store.
    """

    def started() -> bool:
        assert proc.poll() is None, log.read_text(errors="replace")
        return "reconciler started" in log.read_text(errors="replace")

    until(started, within, f"the daemon logging to {log.name} to start", interval=0.05)
