"""A command whose output goes to a pipe while a narrow terminal is beside it.

That is ``reconciler status | grep x`` typed in an 80-column terminal: stdout is a pipe, but
stderr is still the terminal, and a library that measures "the terminal" from any standard
stream lays the piped output out for its width. :func:`piped_beside_a_terminal` runs a command
exactly so (stderr on a pseudo-terminal of ``columns`` columns, ``COLUMNS`` set to the same) and
returns what went to the pipe; tests assert on whole lines of it.
"""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import termios
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path


def piped_beside_a_terminal(
    argv: Sequence[str],
    *,
    columns: int = 60,
    env: Mapping[str, str],
    cwd: Path | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with stdout to a pipe and stderr to a terminal ``columns`` wide; its exit
    code and stdout (stderr is the terminal's, not returned: ``stderr`` is empty)."""
    done, _drawn = beside_a_terminal(argv, columns=columns, env=env, cwd=cwd, timeout=timeout)
    return done


def beside_a_terminal(
    argv: Sequence[str],
    *,
    columns: int = 100,
    env: Mapping[str, str],
    cwd: Path | None = None,
    timeout: float = 60,
) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run ``argv`` with stdout to a pipe and stderr to a terminal ``columns`` wide: its exit
    code and stdout, and what it drew on the terminal (its stderr, escape sequences included),
    read while it runs so that it never blocks."""
    controller, terminal = pty.openpty()
    drawn: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal side was closed: the command is done
                return
            if not chunk:
                return
            drawn.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
        done = subprocess.run(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=terminal,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**env, "COLUMNS": str(columns)},
            cwd=cwd,
            timeout=timeout,
        )
    finally:
        os.close(terminal)
        reader.join(timeout=10)
        os.close(controller)
    result = subprocess.CompletedProcess(done.args, done.returncode, done.stdout, "")
    return result, b"".join(drawn).decode(errors="replace")
