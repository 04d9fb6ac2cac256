"""Reading workflow files from disk without being led outside the directory or stalled.

The one reading function of a directory of workflow files, shared by the daemon's directory
source (:mod:`reconciler.sources.directory`) and the one-shot commands
(:func:`reconciler.config.loader.load_tree`: ``validate``, ``graph``, ``plan``, ``apply``), so
``reconciler validate DIR`` reports exactly the files the daemon would load, the same way.

What callers may rely on:

* every file is looked at with ``lstat`` first and only a regular file is ever opened, with
  ``O_NONBLOCK``, so a FIFO, socket or device named ``*.yaml`` can neither block the reader nor
  feed it endless bytes;
* a symlink is followed only when its target stays inside ``within`` (the source's root);
* a file larger than the limit is not read at all; one that grows while read is cut at the
  limit and refused;
* each refusal is a reason string for that one path (:attr:`TreeFiles.refused`); the caller turns
  it into a per-file problem (:func:`refused_result`), so the other files still load.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.config.snapshot import FileResult, Problem
from reconciler.grants import file_kind

__all__ = [
    "YAML_SUFFIXES",
    "FileRefused",
    "TreeFiles",
    "is_workflow_name",
    "read_tree",
    "read_workflow_file",
    "refused_result",
    "too_large",
]

YAML_SUFFIXES: tuple[str, ...] = (".yaml", ".yml")
"""Names of workflow files (case-sensitive, as for the git sources); hidden files never count."""

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class FileRefused(Exception):
    """One file was not read; ``reason`` says why (never the file's content)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class TreeFiles:
    """The workflow files under a directory: ``files`` read (path → bytes) and ``refused``
    (path → reason), paths posix and relative to the directory read."""

    files: dict[str, bytes] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)


def is_workflow_name(name: str) -> bool:
    """Whether a file called ``name`` is read: ``*.yaml``/``*.yml``, not hidden."""
    return name.endswith(YAML_SUFFIXES) and not name.startswith(".")


def read_tree(directory: Path, *, within: Path, limit: int) -> TreeFiles:
    """Every workflow file under ``directory``, hidden files and directories skipped.

    Symbolic links to directories are not descended into. ``within`` is the directory symlinked
    files must stay in (the source's root; often ``directory`` itself). Raises ``OSError`` when
    ``directory`` or one of its sub-directories cannot be listed: a listing that silently
    missed files would look like deleted workflows.
    """
    root = Path(os.path.realpath(within))
    out = TreeFiles()
    found: list[tuple[str, str]] = []
    # Paths as strings: 10,000 files, and pathlib would cost as much as reading them.
    for dirpath, dirnames, filenames in os.walk(directory, onerror=_raise):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = Path(os.path.relpath(dirpath, directory)).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        for name in filenames:
            if is_workflow_name(name):
                found.append((prefix + name, os.path.join(dirpath, name)))
    for rel, full in sorted(found):
        try:
            data = read_workflow_file(full, within=root, limit=limit)
        except FileRefused as refused:
            out.refused[rel] = refused.reason
            continue
        if data is not None:
            out.files[rel] = data
    return out


def read_workflow_file(file: Path | str, *, within: Path | None, limit: int) -> bytes | None:
    """The bytes of ``file``, or None when it vanished before it could be looked at.

    Raises :class:`FileRefused` for a symlink leaving ``within`` (any symlink is followed when
    ``within`` is None: the user named the file), a broken symlink, anything but a regular file,
    a file over ``limit`` bytes, or one that cannot be read.
    """
    try:
        info = os.lstat(file)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise FileRefused(f"cannot read file: {exc.strerror or type(exc).__name__}") from None
    target: Path | str = file
    if stat.S_ISLNK(info.st_mode):
        target = Path(os.path.realpath(file))
        if within is not None and not target.is_relative_to(os.path.realpath(within)):
            raise FileRefused("symlink to a file outside the workflow directory; not followed")
        try:
            info = os.stat(target)
        except OSError:
            raise FileRefused("symlink to nothing (its target is missing or a loop)") from None
    _require_small_regular(info, limit)
    try:
        fd = os.open(target, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ENOENT and target is file:
            return None
        if exc.errno == errno.ELOOP:
            raise FileRefused("replaced by a symlink while being read") from None
        raise FileRefused(f"cannot read file: {exc.strerror or type(exc).__name__}") from None
    try:
        # What was opened may not be what was looked at (a rename in between): check again.
        opened = os.fstat(fd)
        _require_small_regular(opened, limit)
        data = _read_up_to(fd, opened.st_size, limit)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise FileRefused(f"file grew past the limit of {limit} bytes while read; refused")
    return data


def _read_up_to(fd: int, expected: int, limit: int) -> bytes:
    """Everything ``fd`` holds, at most ``limit + 1`` bytes (one more tells it grew past the
    limit). Reads ``expected`` (the size) and one byte more first: a buffer of the limit's size
    for each small file would cost more than the read."""
    data = os.read(fd, min(expected, limit) + 1)
    if len(data) <= expected:  # a regular file reads short only at its end
        return data
    while len(data) <= limit:
        more = os.read(fd, limit + 1 - len(data))
        if not more:
            break
        data += more
    return data


def refused_result(path: str, reason: str) -> FileResult:
    """The load result of a refused file: one error at its first line, naming no workflow, so
    the workflows the file held before are marked ``Invalid`` (as after a YAML syntax error)."""
    return FileResult(path=path, problems=[Problem(path, 1, 1, reason)])


def too_large(size: int, limit: int) -> str:
    """The reason given for a file of ``size`` bytes over ``limit`` (git blobs say the same)."""
    return (
        f"file is {size} bytes, larger than the limit of {limit} bytes; refused without reading it"
    )


def _require_small_regular(info: os.stat_result, limit: int) -> None:
    mode = info.st_mode
    if not stat.S_ISREG(mode):
        raise FileRefused(f"{file_kind(mode)}, not a regular file; refused without opening it")
    if info.st_size > limit:
        raise FileRefused(too_large(info.st_size, limit))


def _raise(exc: OSError) -> None:
    raise exc
