"""The daemon as a child process: how tests spell ``reconciler run`` and the environment it gets.

End-to-end tests start the real daemon (``reconciler.cli.run``: sources → snapshot → planner → queue
→ runner → store) as a subprocess of this interpreter, so no console script on PATH is needed;
:func:`run_command` is its command line and :func:`without_settings` an environment in which only
the test's own flags and variables configure it. Repositories come from :mod:`tests.support.repos`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CLI = (sys.executable, "-c", "from reconciler.cli import main; main()")
"""The ``reconciler`` command, run by this interpreter; append a command and its arguments."""


def run_command(repo: Path, data_dir: Path, *flags: str) -> list[str]:
    """``reconciler run`` on ``repo`` keeping its data in ``data_dir``, with more ``flags``."""
    return [*CLI, "run", "--repo", str(repo), "--data-dir", str(data_dir), *flags]


def without_settings() -> dict[str, str]:
    """This process's environment without any ``RECONCILER_*`` variable (no stray daemon setting)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
