"""What the operator grants the repository: the capability model of the daemon.

Anyone who can commit can write any workflow, so whatever a workflow asks for (a path to read or
write, an environment variable, a secret file) is checked here against what the operator allowed
with ``reconciler run`` settings (``--file-root``, ``--allow-env``). The repository cannot widen a
:class:`Grants`: it is built from the daemon's settings only, and handed to plugins through
:attr:`reconciler.plugin.ActionContext.grants`, to the secret resolver (``env:`` and ``file:``
references) and to ``validate`` (literal paths and variable names).

Called by: ``reconciler_plugins.files`` and ``reconciler_plugins.shell`` (paths),
:mod:`reconciler.secrets.resolver` (``env:``/``file:``), :mod:`reconciler.config.validate`
(literal values), :mod:`reconciler.cli.run` (builds one from the settings).

What callers may rely on:

* :meth:`Grants.check_path` returns an absolute path with every symlink resolved that lies under
  one of :attr:`Grants.file_roots` and under none of :attr:`Grants.denied_paths`; ``/proc``,
  ``/sys`` and ``/dev`` are always denied, and so is whatever the daemon adds (its data directory,
  its clone of the repository), whatever the roots say. Anything else is :class:`PathNotAllowed`.
* :meth:`Grants.read_bytes` opens the resolved path without following a final symlink, refuses
  anything but a regular file (FIFOs, devices, sockets) and reads at most
  :attr:`Grants.max_read_bytes`.
* :meth:`Grants.check_env` allows a variable only when it matches an ``allow_env`` glob and is not
  one of the daemon's own settings (API token, webhook secret, Vault and store credentials, git
  credentials) in any letter case, whatever the globs say. Anything else is :class:`EnvNotAllowed`.

The check and the open are two steps: a process that can rename directories under a root between
them could redirect a path. The final component is opened with ``O_NOFOLLOW``, so the window is
limited to directories, which committers cannot create outside the roots.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from reconciler.errors import EnvNotAllowed, PathNotAllowed

__all__ = [
    "ALWAYS_DENIED_PATHS",
    "DAEMON_ENV",
    "DEFAULT_ALLOW_ENV",
    "DEFAULT_MAX_READ_BYTES",
    "Grants",
]

ALWAYS_DENIED_PATHS: tuple[Path, ...] = (Path("/proc"), Path("/sys"), Path("/dev"))
"""Never reachable from a workflow, whatever the roots say."""

DEFAULT_ALLOW_ENV: tuple[str, ...] = ("RECONCILER_SECRET_*",)
"""Variables ``env:`` references may read when the operator sets no ``--allow-env``."""

DEFAULT_MAX_READ_BYTES = 16 * 1024 * 1024
"""Largest file ``file.read`` or a ``file:`` secret reads (16 MiB)."""
DEFAULT_DATA_DIR = Path(".reconciler")
"""The daemon's data directory when none is given (``--data-dir``): never reachable by a
workflow, which is why the grants (and ``validate``'s local ones) know it."""

DAEMON_ENV: tuple[str, ...] = (
    "RECONCILER_API_TOKEN*",
    "RECONCILER_WEBHOOK_SECRET*",
    "RECONCILER_VAULT_*",
    "RECONCILER_STORE*",
    "RECONCILER_REPO*",
    "RECONCILER_GITHUB_*",
    "RECONCILER_*_FILE",
    "VAULT_*",
    "GIT_*",
    "SSH_AUTH_SOCK",
    "PGPASSWORD",
    "PGPASSFILE",
    "DATABASE_URL",
    "AWS_*",
    "GOOGLE_APPLICATION_CREDENTIALS",
)
"""The daemon's own credentials and settings: never readable through ``env:``, even when an
``allow_env`` glob matches them."""


def _absolute(path: str) -> str:
    """``path`` with every symlink resolved, as :func:`os.path.realpath` gives it.

    An existing path is opened with ``O_PATH`` (which neither reads nor blocks, even on a FIFO)
    and named by the kernel through ``/proc/self/fd``: three system calls instead of one
    ``lstat`` per component. A path that does not exist yet, or a system without ``/proc``,
    takes :func:`os.path.realpath`.
    """
    try:
        fd = os.open(path, _O_PATH)
    except OSError:
        return os.path.realpath(path)
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return os.path.realpath(path)
    finally:
        os.close(fd)


_O_PATH = getattr(os, "O_PATH", os.O_RDONLY | os.O_NONBLOCK) | getattr(os, "O_CLOEXEC", 0)


def _read_at_most(fd: int, limit: int, *, expected: int) -> bytes:
    """Up to ``limit`` bytes of ``fd``, asking first for the ``expected`` size plus one (asking
    for ``limit`` at once would allocate it whole, 16 MiB for every small file)."""
    chunks: list[bytes] = []
    total = 0
    want = min(limit, expected + 1)
    while total < limit:
        chunk = os.read(fd, want)
        chunks.append(chunk)
        total += len(chunk)
        if len(chunk) < want:  # a regular file reads short only at its end
            break
        want = min(limit - total, 1024 * 1024)
    return b"".join(chunks)


def file_kind(mode: int) -> str:
    """What a file of ``mode`` is, in words (``"a FIFO"``), for refusals that name it."""
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _exact_and_prefixes(paths: Iterable[Path]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    exact = tuple(str(p) for p in paths)
    return exact, tuple(p if p.endswith(os.sep) else p + os.sep for p in exact)


def _under(path: str, root: str) -> bool:
    """Whether the resolved ``path`` is ``root`` or inside it (string prefixes: this runs for
    every file a probe reads, and ``Path.parents`` costs twenty times as much)."""
    if path == root or root == os.sep:
        return True
    return path.startswith(root + os.sep)


@dataclass(frozen=True)
class Grants:
    """The capabilities a workflow has: file roots, environment variables, read size.

    Build one with :meth:`for_daemon` or :meth:`local`; instances are immutable and shared by
    every run of a process.
    """

    file_roots: tuple[Path, ...]
    """Directories (resolved) under which workflows may read and write files."""
    denied_paths: tuple[Path, ...] = ALWAYS_DENIED_PATHS
    """Directories (resolved) never reachable, even under a root."""
    allow_env: tuple[str, ...] = DEFAULT_ALLOW_ENV
    """Globs of environment variables ``env:`` references may read."""
    max_read_bytes: int = DEFAULT_MAX_READ_BYTES
    denied_env: tuple[str, ...] = field(default=DAEMON_ENV)

    @classmethod
    def local(cls, workdir: Path, *, allow_env: Iterable[str] | None = None) -> Grants:
        """The one-shot commands' grants: files under ``workdir``, the default variables."""
        return cls.for_daemon(workdir=workdir, file_roots=None, allow_env=allow_env)

    @classmethod
    def for_daemon(
        cls,
        *,
        workdir: Path,
        file_roots: Iterable[Path] | None,
        allow_env: Iterable[str] | None,
        deny: Iterable[Path] = (),
        max_read_bytes: int = DEFAULT_MAX_READ_BYTES,
    ) -> Grants:
        """Grants from the daemon's settings; ``deny`` adds the data directory and the clone.

        ``file_roots`` ``None`` means the workdir alone; ``allow_env`` ``None`` means
        :data:`DEFAULT_ALLOW_ENV` (an empty list allows no variable).
        """
        base = Path(_absolute(os.fspath(workdir)))
        roots = (
            (base,)
            if file_roots is None
            else tuple(Path(_absolute(os.fspath(base / p))) for p in file_roots)
        )
        denied = tuple(
            dict.fromkeys((*ALWAYS_DENIED_PATHS, *(Path(_absolute(os.fspath(p))) for p in deny)))
        )
        return cls(
            file_roots=roots,
            denied_paths=denied,
            allow_env=DEFAULT_ALLOW_ENV if allow_env is None else tuple(allow_env),
            max_read_bytes=max_read_bytes,
        )

    # -- paths ------------------------------------------------------------------------------

    def check_path(self, path: str | os.PathLike[str], *, base: Path) -> Path:
        """``path`` resolved against ``base`` (symlinks followed), if it is allowed.

        Raises :class:`PathNotAllowed` naming the path and the reason. The returned path may
        not exist yet (a file about to be written).
        """
        raw = os.fspath(path)
        if "\x00" in raw:
            raise PathNotAllowed(f"path {raw!r} contains a NUL byte", details={"path": "?"})
        resolved = _absolute(raw if os.path.isabs(raw) else os.path.join(base, raw))
        self._check_resolved(raw, resolved)
        return Path(resolved)

    def _check_resolved(self, raw: str, resolved: str) -> None:
        """Raise :class:`PathNotAllowed` unless ``resolved`` (what ``raw`` names, every symlink
        resolved) is under a root and under no denied directory."""
        denied_exact, denied_prefixes = self._denied_text
        if resolved in denied_exact or resolved.startswith(denied_prefixes):
            denied = next(d for d in denied_exact if _under(resolved, d))
            raise PathNotAllowed(
                f"path {raw!r} is not allowed: {resolved} is under {denied}, which "
                "workflows can never reach",
                details={"path": raw},
            )
        roots_exact, roots_prefixes = self._roots_text
        if not (resolved in roots_exact or resolved.startswith(roots_prefixes)):
            roots = ", ".join(roots_exact) or "none"
            raise PathNotAllowed(
                f"path {raw!r} is not allowed: {resolved} is outside the file roots "
                f"({roots}); the operator grants more with --file-root",
                details={"path": raw},
            )

    def read_file(self, path: str | os.PathLike[str], *, base: Path) -> tuple[Path, bytes]:
        """Check ``path`` (as :meth:`check_path`) and read it (as :meth:`read_bytes`), both on
        the same file: it is opened once without reading (``O_PATH``), the kernel names what
        was opened, that name is checked, and the read reopens that very inode, so no rename
        or symlink swapped in between can redirect it. Returns the resolved path and the bytes.

        Raises :class:`PathNotAllowed` as those two do, and :class:`FileNotFoundError` (or
        another :class:`OSError`) only for a path the grants allow.
        """
        raw = os.fspath(path)
        joined = raw if os.path.isabs(raw) else os.path.join(base, raw)
        try:
            handle = os.open(joined, _O_PATH) if "\x00" not in joined else -1
        except OSError:
            handle = -1
        if handle < 0:  # missing, NUL, or no O_PATH: the grants decide before the OS does
            resolved = self.check_path(raw, base=base)
            return resolved, self.read_bytes(resolved)
        try:
            real = os.readlink(f"/proc/self/fd/{handle}")
            self._check_resolved(raw, real)
            info = os.fstat(handle)
            self.require_regular(Path(real), info.st_mode)
            if info.st_size > self.max_read_bytes:
                raise PathNotAllowed(
                    f"{real} is {info.st_size} bytes, more than the {self.max_read_bytes} a "
                    "workflow may read",
                    details={"path": real, "size": info.st_size},
                )
            fd = os.open(f"/proc/self/fd/{handle}", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:  # no /proc: the two steps
            resolved = self.check_path(raw, base=base)
            return resolved, self.read_bytes(resolved)
        finally:
            os.close(handle)
        try:
            data = _read_at_most(fd, self.max_read_bytes + 1, expected=info.st_size)
        finally:
            os.close(fd)
        if len(data) > self.max_read_bytes:
            raise PathNotAllowed(
                f"{real} holds more than the {self.max_read_bytes} bytes a workflow may read",
                details={"path": real},
            )
        return Path(real), data

    @cached_property
    def _roots_text(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The roots as text, and the prefixes of what lies inside them (one ``startswith``)."""
        return _exact_and_prefixes(self.file_roots)

    @cached_property
    def _denied_text(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return _exact_and_prefixes(self.denied_paths)

    def read_bytes(self, path: Path, *, limit: int | None = None) -> bytes:
        """The bytes of the regular file at ``path`` (already checked), at most ``limit``.

        Raises :class:`PathNotAllowed` for a symlink in the last component, a FIFO, device,
        socket or directory, or a file over the limit; :class:`OSError` as the OS says
        otherwise (missing file, no permission).
        """
        cap = self.max_read_bytes if limit is None else limit
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise PathNotAllowed(
                    f"{path} is a symbolic link; it is not followed", details={"path": str(path)}
                ) from None
            raise
        try:
            info = os.fstat(fd)
            self.require_regular(path, info.st_mode)
            if info.st_size > cap:
                raise PathNotAllowed(
                    f"{path} is {info.st_size} bytes, more than the {cap} a workflow may read",
                    details={"path": str(path), "size": info.st_size},
                )
            data = _read_at_most(fd, cap + 1, expected=info.st_size)
        finally:
            os.close(fd)
        if len(data) > cap:
            raise PathNotAllowed(
                f"{path} holds more than the {cap} bytes a workflow may read",
                details={"path": str(path)},
            )
        return data

    @staticmethod
    def require_regular(path: Path, mode: int) -> None:
        """Raise :class:`PathNotAllowed` unless ``mode`` is a regular file's."""
        if stat.S_ISREG(mode):
            return
        kind = file_kind(mode)
        raise PathNotAllowed(
            f"{path} is {kind}; workflows read and write regular files only",
            details={"path": str(path)},
        )

    # -- environment ------------------------------------------------------------------------

    def env_allowed(self, name: str) -> bool:
        """Whether ``env:NAME`` may be read (see :meth:`check_env`)."""
        if self._daemon_env(name):
            return False
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.allow_env)

    def _daemon_env(self, name: str) -> bool:
        """Whether ``name`` is one of :attr:`denied_env`, in any letter case: the daemon's
        settings read ``reconciler_api_token`` as well as ``RECONCILER_API_TOKEN``."""
        upper = name.upper()
        return any(fnmatch.fnmatchcase(upper, pattern.upper()) for pattern in self.denied_env)

    def check_env(self, name: str) -> None:
        """Raise :class:`EnvNotAllowed` unless ``env:NAME`` may be read."""
        if self.env_allowed(name):
            return
        if self._daemon_env(name):
            reason = "it holds the daemon's own settings or credentials"
        else:
            globs = ", ".join(self.allow_env) or "none"
            reason = f"it matches no --allow-env glob ({globs})"
        raise EnvNotAllowed(
            f"environment variable {name} is not allowed: {reason}", details={"variable": name}
        )
