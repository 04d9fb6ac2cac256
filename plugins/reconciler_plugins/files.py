"""Built-in ``file.read`` and ``file.write``: local files as observed and desired state.

Where it sits: the runner (``reconciler.engine``) renders an action's ``with:`` into one of the
requests below and calls :meth:`run` with an :class:`~reconciler.plugin.ActionContext`; the
response becomes ``outputs.<as>`` (or ``observed`` when ``file.read`` is the observe probe) and
is journaled by the store. Nothing here knows about runs, retries or the journal.

What callers may rely on:

* relative paths resolve against ``context.workdir``;
* ``file.write`` is atomic: readers see the old file or the new one, never a partial one; a temp
  file (``.<name>.*.tmp`` in the same directory) is removed on success, failure and cancellation;
* ``file.write`` reports ``changed: false`` and touches nothing when the content (and the mode, if
  given) already match, so a converged workflow's second run changes nothing;
* ``file.read`` content passes through ``context.redact``; ``sha256`` and ``size`` describe the
  bytes on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from reconciler.errors import Conflict, NotFound, PluginError
from reconciler.plugin import ActionContext, Plugin, Request, Response

__all__ = ["FileRead", "FileWrite", "PermissionDenied"]

_CHUNK = 64 * 1024
"""Bytes written between two cancellation points of ``file.write``."""


class PermissionDenied(PluginError):
    """The operating system refused access to a path (not retryable: retrying will not help)."""

    retryable = False


def resolve_path(path: str, context: ActionContext) -> Path:
    """``path`` as an absolute path; a relative one is taken relative to ``context.workdir``."""
    p = Path(path)
    return p if p.is_absolute() else Path(context.workdir) / p


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

    path: str = Field(
        min_length=1, description="File to read; relative paths resolve against the workdir."
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
    directory), ``PermissionDenied``, ``PluginError`` (undecodable content, other I/O errors).
    """

    check = True
    Request = FileReadRequest
    Response = FileReadResponse
    errors = (NotFound, Conflict, PermissionDenied, PluginError)

    async def run(self, request: FileReadRequest, context: ActionContext) -> FileReadResponse:
        path = resolve_path(request.path, context)
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            if request.missing_ok:
                return FileReadResponse(exists=False)
            raise _os_error(exc, path, "read") from None
        except OSError as exc:
            raise _os_error(exc, path, "read") from None
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

    path: str = Field(
        min_length=1, description="File to write; relative paths resolve against the workdir."
    )
    content: str = Field(description="The whole desired content of the file.")
    mode: str | None = Field(
        None,
        pattern=r"^0?[0-7]{3,4}$",
        description=(
            "Permission bits in octal, e.g. '0644'. If unset, an existing file keeps its mode "
            "and a new file gets 0666 minus the umask."
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
    A replaced file keeps its owner and group when the daemon may set them; a symlink is
    followed (the file it points to is replaced, the link stays).
    Errors: ``NotFound`` (missing parent with ``makeDirs: false``), ``Conflict`` (the path or a
    parent is not what it should be, e.g. a directory), ``PermissionDenied``, ``PluginError``.
    """

    Request = FileWriteRequest
    Response = FileWriteResponse
    errors = (NotFound, Conflict, PermissionDenied, PluginError)

    async def run(self, request: FileWriteRequest, context: ActionContext) -> FileWriteResponse:
        path = resolve_path(request.path, context)
        if path.is_symlink():
            # replace the file the link points to and keep the link, as editors and Ansible do
            path = path.resolve()
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

        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        except OSError as exc:
            raise _os_error(exc, path, "inspect") from None

        if current is not None:
            if not stat.S_ISREG(current.st_mode):
                raise Conflict(
                    f"{path} exists and is not a regular file", details={"path": str(path)}
                )
            current_mode = stat.S_IMODE(current.st_mode)
            if current.st_size == len(data) and _same_content(path, data):
                if wanted_mode is None or wanted_mode == current_mode:
                    return result.model_copy(update={"changed": False})
                try:
                    os.chmod(path, wanted_mode)
                except OSError as exc:
                    raise _os_error(exc, path, "chmod") from None
                context.logger.info(f"file.write changed the mode of {path}")
                return result
            final_mode = current_mode if wanted_mode is None else wanted_mode
            owner: tuple[int, int] | None = (current.st_uid, current.st_gid)
        else:
            owner = None
            final_mode = 0o666 & ~_current_umask() if wanted_mode is None else wanted_mode

        parent = path.parent
        if request.make_dirs:
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except FileExistsError:
                raise Conflict(f"{parent} exists and is not a directory") from None
            except OSError as exc:
                raise _os_error(exc, parent, "create directory") from None
        elif not parent.is_dir():
            raise NotFound(
                f"directory {parent} does not exist (set makeDirs: true to create it)",
                details={"path": str(parent)},
            )

        await _atomic_write(path, data, mode=final_mode, owner=owner)
        context.logger.info(f"file.write wrote {path} ({len(data)} bytes)")
        return result


def _same_content(path: Path, data: bytes) -> bool:
    try:
        return path.read_bytes() == data
    except OSError:
        return False


async def _atomic_write(
    path: Path, data: bytes, *, mode: int, owner: tuple[int, int] | None
) -> None:
    """Write ``data`` to a temp file next to ``path``, fsync it, and rename it over ``path``.

    The new file gets ``mode`` and, when the process may set it, the ``owner`` (uid, gid) of
    the file it replaces.

    The temp file is removed whatever happens before the rename, cancellation included. Writing
    yields to the event loop every 64 KiB so a large file neither blocks the loop nor delays a
    cancellation.
    """
    try:
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _os_error(exc, path.parent, "create a temp file in") from None
    tmp = Path(tmp_name)
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
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise _os_error(exc, path, "write") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable; some filesystems refuse to fsync a directory, which is fine."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
