"""Opening a source: which kind of source a repository argument names, and its sub-path.

Called through :func:`reconciler.sources.open_source` (re-exported there) by the daemon's
wiring and the one-shot commands. It imports gitpython: the package's ``__init__`` loads this
module only when one of its names is first used, so that importing, say, the signature policy
costs no git.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from git import InvalidGitRepositoryError, NoSuchPathError

from reconciler.config.loader import MAX_FILE_BYTES
from reconciler.errors import FetchFailed
from reconciler.sources.base import Source
from reconciler.sources.directory import DirectorySource
from reconciler.sources.git import LocalGitSource, RemoteGitSource, is_remote_url
from reconciler.sources.signatures import SignaturePolicy


def normalize_subpath(path: str) -> str:
    """``path`` as a clean posix path relative to the repository root ("" for the root).

    Raises ``ValueError`` for a path that escapes the repository (``..``) or is absolute.
    """
    text = path.replace("\\", "/").strip()
    if text.startswith("/"):
        raise ValueError(f"sub-path {path!r} must be relative to the repository root")
    parts = [p for p in PurePosixPath(text).parts if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"sub-path {path!r} must not contain '..'")
    return "/".join(parts)


def open_source(
    repo: str,
    *,
    branch: str | None = None,
    path: str = "",
    data_dir: Path,
    poll_interval: float = 60.0,
    max_file_bytes: int = MAX_FILE_BYTES,
    verify: SignaturePolicy | None = None,
) -> Source:
    """The source for ``repo``: a remote URL, a local git repository, or a plain directory.

    - remote (``https://``, ``ssh://``, ``git@host:``, ``file://``, ``git://``): cloned bare into
      ``<data_dir>/repos/`` on the first fetch, then polled every ``poll_interval`` seconds;
    - a local git repository (its top-level directory): the committed tree of ``branch``
      (default: the branch checked out now), watched and polled;
    - any other existing directory: its files as on disk (development mode); ``branch`` must
      then be None.

    A workflow file larger than ``max_file_bytes`` (default: the loader's limit) is never read;
    it is reported in :attr:`Revision.refused`, as are, for a plain directory, symlinks leaving
    it and special files (FIFOs, devices, sockets).

    Nothing is fetched here. Raises ``FetchFailed`` when a local path does not exist or a remote
    URL uses a transport other than https, http, ssh, git or file (``ext::`` runs commands),
    ``ValueError`` for a bad ``path`` or a branch given for a plain directory.
    """
    subpath = normalize_subpath(path)
    if is_remote_url(repo):
        return RemoteGitSource(
            repo,
            branch=branch,
            subpath=subpath,
            data_dir=data_dir,
            poll_interval=poll_interval,
            max_file_bytes=max_file_bytes,
            verify=verify,
        )
    local = Path(repo).expanduser()
    if not local.is_dir():
        raise FetchFailed(f"repository {repo} does not exist (not a URL, not a directory)")
    try:
        return LocalGitSource(
            local,
            branch=branch,
            subpath=subpath,
            poll_interval=poll_interval,
            max_file_bytes=max_file_bytes,
            verify=verify,
        )
    except (InvalidGitRepositoryError, NoSuchPathError):
        pass
    if verify is not None:
        raise ValueError(
            f"{repo} is a plain directory, not a git repository: it has no signed commits to verify"
        )
    if branch is not None:
        raise ValueError(f"{repo} is a plain directory, not a git repository: it has no branches")
    return DirectorySource(
        local, subpath=subpath, poll_interval=poll_interval, max_file_bytes=max_file_bytes
    )
