"""Files planted in a watched directory to stall, flood or lead out a source that reads them.

Used by the directory source's tests, ``reconciler validate``'s and the daemon's end-to-end tests,
so all three face the same files. Each entry of :func:`plant_hostile_files` names a file that a
naive reader would block on (a FIFO), read without end (``/dev/zero``), read from outside the
directory (a symlink to another workflow) or read into memory whole (a file over the limit).
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from reconciler.config.loader import MAX_FILE_BYTES
from tests.support.workflows import file_workflow_yaml


def plant_hostile_files(directory: Path, *, outside: Path) -> dict[str, str]:
    """Create the hostile files in ``directory`` (made if missing) and, in ``outside`` (a
    directory elsewhere), the workflow ``elsewhere`` the escaping symlink points at; were it
    loaded, it would write ``outside / "stolen.txt"``.

    Returns each planted file's name and a fragment of the reason it must be refused with.
    """
    directory.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    stolen = file_workflow_yaml("elsewhere", outside / "stolen.txt", "loaded from outside")
    (outside / "elsewhere.yaml").write_text(stolen)
    os.mkfifo(directory / "fifo.yaml")
    (directory / "zero.yaml").symlink_to("/dev/zero")
    (directory / "escape.yaml").symlink_to(outside / "elsewhere.yaml")
    (directory / "dangling.yaml").symlink_to(directory / "missing-target")
    with (directory / "big.yaml").open("wb") as big:  # sparse: costs no disk
        big.truncate(MAX_FILE_BYTES + 1)
    with contextlib.closing(socket.socket(socket.AF_UNIX)) as sock:
        sock.bind(str(directory / "sock.yaml"))  # the socket file stays after close
    return {
        "fifo.yaml": "a FIFO, not a regular file",
        "zero.yaml": "symlink to a file outside the workflow directory",
        "escape.yaml": "symlink to a file outside the workflow directory",
        "dangling.yaml": "symlink to nothing",
        "big.yaml": f"file is {MAX_FILE_BYTES + 1} bytes, larger than the limit",
        "sock.yaml": "a socket, not a regular file",
    }


def release_fifo_readers(fifo: Path) -> None:
    """Unblock a reader stuck opening ``fifo`` (code that opened it without ``O_NONBLOCK``), so
    a failing test ends instead of hanging on that reader's thread."""
    with contextlib.suppress(OSError):
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
