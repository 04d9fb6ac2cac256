"""Built-in ``file.read``, ``file.write`` and ``file.delete``: local files as observed and
desired state.

Where it sits: the runner (``reconciler.engine``) renders an action's ``with:`` into one of the
requests below and calls :meth:`run` with an :class:`~reconciler.plugin.ActionContext`; the
response becomes ``outputs.<as>`` (or ``observed`` when ``file.read`` is the observe probe) and
is journaled by the store. Nothing here knows about runs, retries or the journal.

What callers may rely on:

* relative paths resolve against ``context.workdir``; every path, relative or absolute, must pass
  the operator's grants (``context.granted().check_path``): under a file root (``--file-root``,
  default the workdir), never under the data directory, the daemon's clone of the repository,
  ``/proc``, ``/sys`` or ``/dev``, whatever ``../`` or symlinks it goes through. Anything else is
  :class:`~reconciler.errors.PathNotAllowed`, and nothing is read or written;
* ``file.read`` reads regular files only, at most the grants' ``max_read_bytes`` (a FIFO, a
  device, a socket or a bigger file is ``PathNotAllowed`` at once, without blocking or reading);
* ``file.write`` writes regular files only: it resolves the path (a symlink inside the roots is
  followed to its target, which must be inside the roots too), then works in the resolved parent
  directory through a descriptor opened without following symlinks, so the temp file, the
  comparison, the chmod and the rename all happen in the directory that was checked;
* ``file.write`` is atomic: readers see the old file or the new one, never a partial one; a temp
  file (``.<name>.*.tmp`` in the same directory) is removed on success, failure and cancellation;
* ``file.write`` reports ``changed: false`` and touches nothing when the content (and the mode, if
  given) already match, so a converged workflow's second run changes nothing;
* ``file.read`` content passes through ``context.redact``; ``sha256`` and ``size`` describe the
  bytes on disk;
* ``file.delete`` removes regular files only, in the directory that was checked, and reports
  ``changed: false`` when the file is already absent.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from pydantic import ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from reconciler.errors import Conflict, NotFound, PathNotAllowed, PluginError
from reconciler.grants import Grants
from reconciler.plugin import ActionContext, LocalPath, Plugin, Request, Response

__all__ = ["FileDelete", "FileRead", "FileWrite", "PermissionDenied"]

_CHUNK = 64 * 1024
"""Bytes written between two cancellation points of ``file.write``."""


class PermissionDenied(PluginError):
    """The operating system refused access to a path (not retryable: retrying will not help)."""

    retryable = False


def granted_path(path: str, context: ActionContext) -> Path:
    """``path`` resolved (relative to ``context.workdir``, symlinks followed) if the operator's
    grants allow it; :class:`PathNotAllowed` otherwise."""
    return context.granted().check_path(path, base=context.workdir)


def _os_error(exc: OSError, path: Path, doing: str) -> PluginError:
    """Map an :class:`OSError` to a named error whose message names the path, never content."""
    reason = exc.strerror or type(exc).__name__
    details: dict[str, Any] = {"path": str(path)}
    if isinstance(exc, FileNotFoundError):
        return NotFound(f"cannot {doing} {path}: {reason}", details=details)
    if isinstance(exc, PermissionError):
        return PermissionDenied(f"cannot {doing} {path}: {reason}", details=details)
    if isinstance(exc, IsADirectoryError | NotADirectoryError):
        return Conflict(f"cannot {doing} {path}: {reason}", details=details)
    return PluginError(f"cannot {doing} {path}: {reason}", details=details)


# --------------------------------------------------------------------------------------- read


class FileReadRequest(Request):
    """What ``file.read`` reads."""

    model_config = ConfigDict(alias_generator=to_camel)

    path: Annotated[str, LocalPath()] = Field(
        min_length=1,
        description="File to read; relative paths resolve against the workdir. It must lie "
        "under a file root (--file-root, default the workdir).",
    )
    encoding: str = Field("utf-8", description="Text encoding used to decode the content.")
    missing_ok: bool = Field(
        False,
        description="If true a missing file is not an error: the response has exists=false.",
    )


class FileReadResponse(Response):
    """What ``file.read`` saw."""

    model_config = ConfigDict(alias_generator=to_camel)

    changed: bool = Field(False, description="Always false: reading changes nothing.")
    exists: bool = Field(False, description="Whether the file exists.")
    content: str = Field(
        "", description="Decoded content with known secret values replaced by ***; '' if missing."
    )
    sha256: str = Field("", description="Hex SHA-256 of the bytes on disk; '' if missing.")
    size: int = Field(0, description="Size in bytes; 0 if missing.")


class FileRead(Plugin[FileReadRequest, FileReadResponse]):
    """Read a text file: its content, size and SHA-256 (read-only).

    Errors: ``NotFound`` (missing file, unless ``missingOk``), ``Conflict`` (the path is a
    directory), ``PathNotAllowed`` (outside the file roots, under a denied directory, a FIFO,
    device or socket, bigger than ``--max-file-bytes``), ``PermissionDenied``, ``PluginError``
    (undecodable content, other I/O errors).
    """

    check = True
    Request = FileReadRequest
    Response = FileReadResponse
    errors = (NotFound, Conflict, PathNotAllowed, PermissionDenied, PluginError)

    async def run(self, request: FileReadRequest, context: ActionContext) -> FileReadResponse:
        try:
            path, data = _read_granted(context, request.path)
        except FileNotFoundError as exc:
            if request.missing_ok:
                return FileReadResponse(exists=False)
            raise _os_error(exc, _shown(request.path, context), "read") from None
        except OSError as exc:
            raise _os_error(exc, _shown(request.path, context), "read") from None
        try:
            text = data.decode(request.encoding)
        except LookupError:
            raise PluginError(
                f"unknown encoding {request.encoding!r}", details={"path": str(path)}
            ) from None
        except UnicodeDecodeError as exc:
            raise PluginError(
                f"cannot decode {path} as {request.encoding} at byte {exc.start}",
                details={"path": str(path)},
            ) from None
        return FileReadResponse(
            exists=True,
            content=context.redact(text),
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
        )


# -------------------------------------------------------------------------------------- write


class FileWriteRequest(Request):
    """What ``file.write`` makes true."""

    model_config = ConfigDict(alias_generator=to_camel)

    path: Annotated[str, LocalPath()] = Field(
        min_length=1,
        description="File to write; relative paths resolve against the workdir. It must lie "
        "under a file root (--file-root, default the workdir), never under the data directory.",
    )
    content: str = Field(description="The whole desired content of the file.")
    mode: str | None = Field(
        None,
        pattern=r"^0?[0-7]{3,4}$",
        description=(
            "Permission bits in octal, e.g. '0644'. If unset, an existing file keeps its mode "
            "and a new file gets 0666 minus the umask. The set-user-ID and set-group-ID bits "
            "(4000, 2000) are refused."
        ),
    )
    make_dirs: bool = Field(True, description="Create missing parent directories.")
    encoding: str = Field("utf-8", description="Text encoding used to write the content.")

    @field_validator("mode", mode="before")
    @classmethod
    def _mode_must_be_quoted(cls, value: Any) -> Any:
        # YAML 1.1 reads an unquoted 0644 as 420 and 644 as 644: an integer is ambiguous.
        if isinstance(value, int) and not isinstance(value, bool):
            raise ValueError('write the mode as a quoted octal string, e.g. mode: "0644"')
        return value

    @field_validator("mode")
    @classmethod
    def _no_set_id_bits(cls, value: str | None) -> str | None:
        # a set-id file owned by the daemon's user would run as the daemon for any local user
        if value is not None and int(value, 8) & (stat.S_ISUID | stat.S_ISGID):
            raise ValueError(
                "the set-user-ID and set-group-ID bits (4000, 2000) are not allowed: a "
                "workflow cannot make a program that runs as the daemon's user"
            )
        return value

    def mode_bits(self) -> int | None:
        return None if self.mode is None else int(self.mode, 8)


class FileWriteResponse(Response):
    """What ``file.write`` did."""

    model_config = ConfigDict(alias_generator=to_camel)

    changed: bool = Field(False, description="True if the content or the mode was changed.")
    path: str = Field("", description="Absolute path of the file.")
    sha256: str = Field("", description="Hex SHA-256 of the file's content after the call.")


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class FileWrite(Plugin[FileWriteRequest, FileWriteResponse]):
    """Write a file atomically; changes nothing when content and mode already match.

    The new content goes to a temp file in the same directory, is fsynced, then renamed over the
    target with ``os.replace`` (and the directory fsynced), so a crash or a cancellation never
    leaves a half-written file. When only the mode differs the file is chmod-ed, not rewritten.
    A replaced file keeps its owner and group when the daemon may set them. A symlink inside the
    file roots is followed (the file it points to is replaced, the link stays) only when its
    target is inside the roots as well.
    Errors: ``NotFound`` (missing parent with ``makeDirs: false``), ``Conflict`` (the path or a
    parent is not what it should be, e.g. a directory), ``PathNotAllowed`` (outside the file
    roots, under a denied directory such as the data directory or the daemon's clone, a symlink
    leading out of the roots, a FIFO, device or socket), ``PermissionDenied``, ``PluginError``.
    """

    Request = FileWriteRequest
    Response = FileWriteResponse
    errors = (NotFound, Conflict, PathNotAllowed, PermissionDenied, PluginError)

    async def run(self, request: FileWriteRequest, context: ActionContext) -> FileWriteResponse:
        grants = context.granted()
        path = granted_path(request.path, context)
        try:
            data = request.content.encode(request.encoding)
        except LookupError:
            raise PluginError(f"unknown encoding {request.encoding!r}") from None
        except UnicodeEncodeError as exc:
            raise PluginError(
                f"content cannot be encoded as {request.encoding} at character {exc.start}"
            ) from None
        digest = hashlib.sha256(data).hexdigest()
        wanted_mode = request.mode_bits()
        result = FileWriteResponse(changed=True, path=str(path), sha256=digest)

        parent = path.parent
        if request.make_dirs:
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except FileExistsError:
                raise Conflict(
                    f"cannot write {path}: {parent} exists and is not a directory",
                    details={"path": str(path)},
                ) from None
            except OSError as exc:
                raise _os_error(exc, parent, "create directory") from None

        with _granted_directory(grants, parent) as dir_fd:
            name = path.name
            try:
                current = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                current = None
            except OSError as exc:
                raise _os_error(exc, path, "inspect") from None

            if current is not None:
                if stat.S_ISLNK(current.st_mode):
                    # check_path resolved every link: this one appeared since
                    raise PathNotAllowed(
                        f"{path} became a symbolic link after it was checked; it is not followed",
                        details={"path": str(path)},
                    )
                if stat.S_ISDIR(current.st_mode):
                    raise Conflict(
                        f"{path} exists and is not a regular file", details={"path": str(path)}
                    )
                grants.require_regular(path, current.st_mode)
                current_mode = stat.S_IMODE(current.st_mode)
                if current.st_size == len(data) and _same_content(dir_fd, name, data):
                    if wanted_mode is None or wanted_mode == current_mode:
                        return result.model_copy(update={"changed": False})
                    _chmod(grants, dir_fd, path, wanted_mode)
                    context.logger.info(f"file.write changed the mode of {path}")
                    return result
                final_mode = current_mode if wanted_mode is None else wanted_mode
                owner: tuple[int, int] | None = (current.st_uid, current.st_gid)
            else:
                owner = None
                final_mode = 0o666 & ~_current_umask() if wanted_mode is None else wanted_mode

            await _atomic_write(dir_fd, path, data, mode=final_mode, owner=owner)
        context.logger.info(f"file.write wrote {path} ({len(data)} bytes)")
        return result


# ------------------------------------------------------------------------------------- delete


class FileDeleteRequest(Request):
    """Which file ``file.delete`` makes absent."""

    model_config = ConfigDict(alias_generator=to_camel)

    path: Annotated[str, LocalPath()] = Field(
        min_length=1,
        description="File to remove; relative paths resolve against the workdir. It must lie "
        "under a file root (--file-root, default the workdir), never under the data directory.",
    )
    missing_ok: bool = Field(
        True,
        description="If true (the default) a file that is already absent is the desired "
        "state: changed=false. If false it is NotFound.",
    )


class FileDeleteResponse(Response):
    """What ``file.delete`` did."""

    model_config = ConfigDict(alias_generator=to_camel)

    changed: bool = Field(False, description="True if a file was removed.")
    path: str = Field("", description="Absolute path of the file.")


class FileDelete(Plugin[FileDeleteRequest, FileDeleteResponse]):
    """Make a file absent (for ``onDelete`` clean-ups); changes nothing when it already is.

    Only regular files are removed: a directory is a ``Conflict``; a FIFO, device or socket is
    ``PathNotAllowed``. Paths go through the same grants as ``file.write``, and the removal
    happens in the directory that was checked (through a descriptor that follows no symlink);
    a symlink inside the file roots is followed, as ``file.write`` follows it, and the file it
    points to is removed. Errors: ``NotFound`` (with ``missingOk: false``), ``Conflict``,
    ``PathNotAllowed``, ``PermissionDenied``, ``PluginError``.
    """

    Request = FileDeleteRequest
    Response = FileDeleteResponse
    errors = (NotFound, Conflict, PathNotAllowed, PermissionDenied, PluginError)

    async def run(self, request: FileDeleteRequest, context: ActionContext) -> FileDeleteResponse:
        grants = context.granted()
        path = granted_path(request.path, context)
        try:
            with _granted_directory(grants, path.parent) as dir_fd:
                removed = _unlink_regular(grants, dir_fd, path, missing_ok=request.missing_ok)
        except NotFound:
            if not request.missing_ok:
                raise
            removed = False  # its directory is gone too: absent is what was asked
        if removed:
            context.logger.info(f"file.delete removed {path}")
        return FileDeleteResponse(changed=removed, path=str(path))


def _unlink_regular(grants: Grants, dir_fd: int, path: Path, *, missing_ok: bool) -> bool:
    """Remove the regular file ``path.name`` in the directory ``dir_fd``; False when it was
    already absent (``NotFound`` unless ``missing_ok``)."""
    try:
        current = os.stat(path.name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        if missing_ok:
            return False
        raise NotFound(f"{path} does not exist", details={"path": str(path)}) from None
    if stat.S_ISDIR(current.st_mode):
        raise Conflict(
            f"{path} is a directory; file.delete removes files only", details={"path": str(path)}
        )
    if stat.S_ISLNK(current.st_mode):  # check_path resolved every link: this one appeared since
        raise PathNotAllowed(
            f"{path} became a symbolic link after it was checked; it is not followed",
            details={"path": str(path)},
        )
    grants.require_regular(path, current.st_mode)
    try:
        os.unlink(path.name, dir_fd=dir_fd)
    except FileNotFoundError:
        return False  # removed meanwhile
    except OSError as exc:
        raise _os_error(exc, path, "remove") from None
    return True


_NOFOLLOW_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@contextlib.contextmanager
def _granted_directory(grants: Grants, parent: Path) -> Iterator[int]:
    """A descriptor of ``parent``, once it is checked again as it is now (directories may have
    just been created): still granted, and no symlink in it since the first check."""
    again = grants.check_path(parent, base=parent)
    if again != parent:
        raise PathNotAllowed(
            f"{parent} now leads to {again} through a symbolic link; it is not followed",
            details={"path": str(parent)},
        )
    try:
        dir_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(
            f"directory {parent} does not exist (set makeDirs: true to create it)",
            details={"path": str(parent)},
        ) from None
    except OSError as exc:
        if isinstance(exc, NotADirectoryError) or exc.errno == errno.ELOOP:
            raise Conflict(f"{parent} is not a directory", details={"path": str(parent)}) from None
        raise _os_error(exc, parent, "open directory") from None
    try:
        yield dir_fd
    finally:
        os.close(dir_fd)


def _read_granted(context: ActionContext, path: str) -> tuple[Path, bytes]:
    """The resolved path and the bytes of ``path`` through ``grants.read_file`` (checked and
    read on the same file), on the event loop: a probe's file is small and the read is capped
    at ``--max-file-bytes``. A directory is reported as the OS reports it, so it stays a
    ``Conflict``."""
    try:
        return context.granted().read_file(path, base=context.workdir)
    except PathNotAllowed as exc:
        if "is a directory" in exc.message:
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR)) from None
        raise


def _shown(path: str, context: ActionContext) -> Path:
    """``path`` as an error names it: absolute, as the workflow wrote it (the grants allowed
    it, so naming it reveals nothing)."""
    return Path(path) if os.path.isabs(path) else Path(context.workdir) / path


def _same_content(dir_fd: int, name: str, data: bytes) -> bool:
    try:
        fd = os.open(name, _NOFOLLOW_READ, dir_fd=dir_fd)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            return False
        return fh.read(len(data) + 1) == data


def _chmod(grants: Grants, dir_fd: int, path: Path, mode: int) -> None:
    """chmod the regular file ``path.name`` of ``dir_fd`` without following a symlink."""
    try:
        fd = os.open(path.name, _NOFOLLOW_READ, dir_fd=dir_fd)
    except OSError as exc:
        raise _os_error(exc, path, "chmod") from None
    try:
        grants.require_regular(path, os.fstat(fd).st_mode)
        os.fchmod(fd, mode)
    except OSError as exc:
        raise _os_error(exc, path, "chmod") from None
    finally:
        os.close(fd)


async def _atomic_write(
    dir_fd: int, path: Path, data: bytes, *, mode: int, owner: tuple[int, int] | None
) -> None:
    """Write ``data`` to a temp file next to ``path`` (in ``dir_fd``), fsync it, and rename it
    over ``path``.

    The new file gets ``mode`` and, when the process may set it, the ``owner`` (uid, gid) of
    the file it replaces. The temp file is created with ``O_EXCL | O_NOFOLLOW`` and the rename
    happens inside ``dir_fd``, so neither can be redirected by a symlink.

    The temp file is removed whatever happens before the rename, cancellation included. Writing
    yields to the event loop every 64 KiB so a large file neither blocks the loop nor delays a
    cancellation.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(10):
        tmp = f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, flags, 0o600, dir_fd=dir_fd)
            break
        except FileExistsError:
            continue
        except OSError as exc:
            raise _os_error(exc, path.parent, "create a temp file in") from None
    else:
        raise PluginError(f"cannot create a temp file in {path.parent}")
    try:
        with os.fdopen(fd, "wb") as fh:
            for start in range(0, len(data), _CHUNK):
                fh.write(data[start : start + _CHUNK])
                await asyncio.sleep(0)
            fh.flush()
            if owner is not None:
                with contextlib.suppress(PermissionError):
                    os.fchown(fh.fileno(), *owner)
            os.fchmod(fh.fileno(), mode)
            # the syncs wait for the disk (milliseconds each): in a thread, the other runs and
            # the API go on meanwhile
            await asyncio.to_thread(_sync_and_replace, fh.fileno(), tmp, path.name, dir_fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise _os_error(exc, path, "write") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise


def _sync_and_replace(fd: int, tmp: str, name: str, dir_fd: int) -> None:
    """fsync the temp file ``fd``, rename it over ``name`` (both in ``dir_fd``) and fsync the
    directory, so the rename is durable (some filesystems refuse to fsync a directory, which
    is fine)."""
    os.fsync(fd)
    os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    with contextlib.suppress(OSError):
        os.fsync(dir_fd)
