"""Git sources: a remote repository cloned into the data directory, or a local repository.

Called by the daemon's controller and the one-shot commands through
:func:`~reconciler.sources.open_source`. Both sources read file bytes straight from a commit's tree with gitpython (no working-tree checkout), so a
local repository's uncommitted edits are never seen. Between two commits only git's own tree
diff, limited to the sub-path, decides what changed, and only the changed blobs are read; the
bytes of unchanged files are carried over from the previous :class:`Revision`. The loop,
polling, watching and bookkeeping live in :mod:`reconciler.sources.base`; the loader
(``reconciler/config``) turns the bytes into a snapshot.

Every gitpython call runs in ``asyncio.to_thread``. Credentials in a remote URL never appear in
``description``, logs or :class:`~reconciler.errors.FetchFailed` messages; they are stored only
in the private clone's ``config`` (so they are not on a command line visible in ``ps``).

Git runs nothing the repository put on disk. Every git process the sources start gets
:func:`git_environment`: no system or user configuration, an empty hooks path, no fsmonitor,
no filter drivers, no credential helper or askpass program from the repository's own config,
``ssh`` in batch mode, and only the transports of :data:`ALLOWED_PROTOCOLS` (never ``ext::``,
which runs a command). What the operator configures through ``GIT_CONFIG_COUNT`` (the chart's
credential helper) and ``GIT_SSH_COMMAND`` still applies. A blob larger than the loader's file
limit is never read: it becomes an entry of :attr:`Revision.refused` naming its size.

Why one module of ~600 lines: the remote and the local source differ only in where the commit
comes from; the tree reading, the diffing and the hardened git environment are shared by both.
"""

from __future__ import annotations

import asyncio
import binascii
import configparser
import hashlib
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import git
import structlog

from reconciler.config.files import too_large
from reconciler.config.loader import MAX_FILE_BYTES
from reconciler.errors import FetchFailed, RefNotFound, SignatureRefused
from reconciler.sources.base import (
    BaseSource,
    Revision,
    is_workflow_file,
    scrub,
    url_secrets,
)
from reconciler.sources.github_app import CACHE_DIR_VARIABLE
from reconciler.sources.signatures import SignaturePolicy
from reconciler.urls import mask_url

log = structlog.get_logger(__name__)

FETCH_TIMEOUT_SECONDS = 300.0
"""A fetch that takes longer than this is killed and reported as failed."""

_REMOTE = "origin"
_SYMLINK_MODE = "120000"
_GITLINK_MODE = "160000"
_NULL_SHA = "0" * 40
_PREVIEW_REFS = "refs/reconciler-previews/"
"""Where a remote source keeps refs fetched for previews (never the tracked branch's ref)."""
_SAFE_REF = re.compile(r"^(?!-)(?!.*\.\.)[A-Za-z0-9._/@+-]{1,200}$")
_FULL_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


def check_ref(ref: str) -> str:
    """``ref`` stripped, or :class:`RefNotFound` unless it is a plain branch, tag, ``refs/...``
    name or commit id (no option, range, reflog or revision expression)."""
    ref = ref.strip()
    if not _SAFE_REF.match(ref) or ref.endswith((".lock", "/", ".")) or "@{" in ref:
        raise RefNotFound(f"{ref[:80]!r} is not a branch, tag or commit name")
    return ref


ALLOWED_PROTOCOLS: tuple[str, ...] = ("https", "http", "ssh", "git", "file")
"""The transports the daemon's git may use (``GIT_ALLOW_PROTOCOL``). Remote helpers such as
``ext::`` (runs a command) and ``fd::`` are refused, even when a URL rewrite leads to them."""

_URL_SCHEMES = frozenset({*ALLOWED_PROTOCOLS, "git+ssh", "ssh+git"})
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_TRANSPORT = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)::")
_SCP = re.compile(r"^[\w.-]+@[\w.-]+:")
_FILTER_SECTION = re.compile(r'^filter(?: "(.+)"|\.(.+))$')

_RESET_CONFIG: tuple[tuple[str, str], ...] = (("credential.helper", ""),)
"""Set before the operator's own ``GIT_CONFIG_COUNT`` entries: an empty helper empties the list,
so helpers from the repository's config are dropped and the operator's still apply."""

_FORCED_CONFIG: tuple[tuple[str, str], ...] = (
    ("core.hooksPath", os.devnull),
    ("core.fsmonitor", "false"),
    ("core.attributesFile", os.devnull),
)
"""Set after everything else (command-line scope wins over every config file)."""

_DEFAULT_ENV: tuple[tuple[str, str], ...] = (
    # Set, so core.sshCommand from any config file is never read.
    ("GIT_SSH_COMMAND", "ssh -o BatchMode=yes"),
    # Empty: core.askPass and core.gitProxy from any config file are never run.
    ("GIT_ASKPASS", ""),
    ("GIT_PROXY_COMMAND", ""),
)
"""Variables the operator may set to something else; when unset, these values."""


def is_remote_url(repo: str) -> bool:
    """Whether ``repo`` names a remote to clone (``https://``, ``ssh://``, ``git@host:``,
    ``file://``, ``git://``, or a ``transport::address`` that :func:`check_remote_url` refuses)
    rather than a local path."""
    return bool(_SCHEME.match(repo) or _TRANSPORT.match(repo) or _SCP.match(repo))


def check_remote_url(url: str) -> None:
    """Raise :class:`FetchFailed` unless ``url`` uses one of :data:`ALLOWED_PROTOCOLS`.

    ``ext::`` and other ``transport::address`` forms run remote helpers (``ext::`` runs any
    command), so they are refused before git sees them.
    """
    allowed = ", ".join(ALLOWED_PROTOCOLS)
    transport = _TRANSPORT.match(url)
    if transport:
        # The address after "::" is a command line for ext::; it is not repeated.
        raise FetchFailed(
            f"repository {transport.group(1)}::…: remote helper transports are not allowed; "
            f"the daemon fetches over {allowed} only"
        )
    scheme = _SCHEME.match(url)
    if scheme and scheme.group(1).lower() not in _URL_SCHEMES:
        raise FetchFailed(
            f"repository {mask_url(url)}: transport {scheme.group(1)}:// is not allowed; "
            f"the daemon fetches over {allowed} only"
        )


def git_environment(git_dir: Path | None = None) -> dict[str, str]:
    """Environment for every git command on ``git_dir``: run nothing from the repository.

    - no system or global config (``GIT_CONFIG_NOSYSTEM``, ``GIT_CONFIG_GLOBAL=/dev/null``):
      a file a workflow could write (``~/.gitconfig``) is never read;
    - command-line config (``GIT_CONFIG_COUNT``, which outranks every config file, the
      repository's included): the credential helper list reset, then the operator's own
      ``GIT_CONFIG_COUNT`` entries, then an empty hooks path, no fsmonitor, no attributes file
      and every filter driver named in ``git_dir``'s config emptied (we never check out, so
      filters never run anyway);
    - ``GIT_ALLOW_PROTOCOL``: only :data:`ALLOWED_PROTOCOLS`, whatever the config says;
    - never prompt (``GIT_TERMINAL_PROMPT=0``, ssh ``BatchMode``, an empty askpass);
    - a GitHub App credential helper caches its token inside ``git_dir`` unless the operator
      chose a directory.
    """
    env = {
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_ATTR_NOSYSTEM": "1",
        "GIT_ALLOW_PROTOCOL": ":".join(ALLOWED_PROTOCOLS),
    }
    for name, value in _DEFAULT_ENV:
        if name not in os.environ:
            env[name] = value
    if git_dir is not None and CACHE_DIR_VARIABLE not in os.environ:
        # A GitHub App's installation token is cached beside the clone, in the data
        # directory no workflow can read, rather than in a $HOME a file root may cover.
        env[CACHE_DIR_VARIABLE] = str(git_dir / "credentials")
    entries = [*_RESET_CONFIG, *_operator_config(), *_FORCED_CONFIG]
    if git_dir is not None:
        for driver in _filter_drivers(git_dir):
            entries += [(f"filter.{driver}.{key}", "") for key in ("process", "clean", "smudge")]
            entries.append((f"filter.{driver}.required", "false"))
    env["GIT_CONFIG_COUNT"] = str(len(entries))
    for i, (key, value) in enumerate(entries):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


def _operator_config() -> list[tuple[str, str]]:
    """The ``GIT_CONFIG_COUNT`` entries of the daemon's own environment (set by the operator)."""
    try:
        count = int(os.environ.get("GIT_CONFIG_COUNT", "0"))
    except ValueError:
        return []
    entries: list[tuple[str, str]] = []
    for i in range(count):
        key = os.environ.get(f"GIT_CONFIG_KEY_{i}")
        if key:
            entries.append((key, os.environ.get(f"GIT_CONFIG_VALUE_{i}", "")))
    return entries


def _filter_drivers(git_dir: Path) -> list[str]:
    """Names of the filter drivers defined in ``git_dir/config`` (and the files it includes)."""
    config = git_dir / "config"
    if not config.is_file():
        return []
    try:
        with git.GitConfigParser(str(config), read_only=True) as reader:
            sections = reader.sections()
    except (OSError, ValueError, configparser.Error):  # git itself refuses such a repository
        return []
    names: list[str] = []
    for section in sections:
        match = _FILTER_SECTION.match(section)
        if match:
            names.append(match.group(1) or match.group(2))
    return names


def _open_repo(path: Path) -> git.Repo:
    """``path`` opened by gitpython, every later git command under :func:`git_environment`."""
    repo = git.Repo(path)
    repo.git.update_environment(**git_environment(Path(repo.common_dir)))
    return repo


class _TreeReader:
    """Reads one repository's commits into :class:`Revision` objects (runs in a worker thread).

    ``where`` is the human description used in error messages (repository masked, branch).
    A blob larger than ``limit`` bytes is never read: its size comes from the tree listing (or
    ``cat-file --batch-check``) and the path goes to :attr:`Revision.refused`.
    """

    def __init__(self, repo: git.Repo, subpath: str, *, where: str, limit: int) -> None:
        self.repo = repo
        self.subpath = subpath
        self.where = where
        self.limit = limit

    def read(self, sha: str, previous: Revision | None) -> Revision:
        """The revision at commit ``sha``, incremental from ``previous`` when possible."""
        commit = self.repo.commit(sha)
        self._check_subpath(sha)
        files: dict[str, bytes]
        refused: dict[str, str]
        if previous is not None and self._has_commit(previous.id):
            files, refused, changed, removed = self._incremental(previous, sha)
        else:
            files, refused = self._read_all(sha)
            old = previous.files if previous is not None else {}
            old_refused = previous.refused if previous is not None else {}
            changed = {path for path, data in files.items() if old.get(path) != data}
            changed |= {path for path, why in refused.items() if old_refused.get(path) != why}
            removed = {*old, *old_refused} - {*files, *refused}
            # Share unchanged bytes with the previous revision, as the incremental path does.
            for path in set(files) - changed:
                files[path] = old[path]
        author = (commit.author.name or "") if commit.author else ""
        return Revision(
            id=sha,
            files=files,
            changed=frozenset(changed),
            removed=frozenset(removed),
            previous=previous.id if previous is not None else None,
            message=commit.summary if isinstance(commit.summary, str) else commit.summary.decode(),
            author=author,
            committed_at=commit.committed_datetime,
            refused=refused,
        )

    def _check_subpath(self, sha: str) -> None:
        if not self.subpath:
            return
        try:
            kind = self.repo.git.cat_file("-t", f"{sha}:{self.subpath}")
        except git.GitCommandError:
            raise FetchFailed(
                f"{self.where}: path '{self.subpath}' does not exist at commit {sha[:12]}"
            ) from None
        if kind.strip() != "tree":
            raise FetchFailed(
                f"{self.where}: path '{self.subpath}' is not a directory at commit {sha[:12]}"
            )

    def _has_commit(self, sha: str) -> bool:
        if len(sha) != 40 or not all(c in "0123456789abcdef" for c in sha):
            return False
        try:
            return bool(self.repo.git.cat_file("-t", sha).strip() == "commit")
        except git.GitCommandError:
            return False

    def _pathspec(self) -> list[str]:
        return ["--", f":(literal){self.subpath}"] if self.subpath else []

    def _relative(self, path: str) -> str | None:
        """``path`` relative to the sub-path, or None when outside it or not a workflow file."""
        if self.subpath:
            prefix = self.subpath + "/"
            if not path.startswith(prefix):
                return None
            path = path[len(prefix) :]
        return path if is_workflow_file(path) else None

    def _blob(self, hexsha: str, size: int | None = None) -> bytes | str:
        """The blob's bytes, or the reason it is refused (over the limit: never read)."""
        binsha = binascii.unhexlify(hexsha)
        if size is None:
            size = int(self.repo.odb.info(binsha).size)
        if size > self.limit:
            return too_large(size, self.limit)
        data: bytes = self.repo.odb.stream(binsha).read()
        return data

    def _read_all(self, sha: str) -> tuple[dict[str, bytes], dict[str, str]]:
        out = self.repo.git.ls_tree("-r", "-z", "-l", "--full-tree", sha, *self._pathspec())
        files: dict[str, bytes] = {}
        refused: dict[str, str] = {}
        for record in out.split("\0"):
            if not record:
                continue
            meta, _, path = record.partition("\t")
            mode, kind, hexsha, size = meta.split()
            rel = self._relative(path)
            if rel is None or kind != "blob" or mode == _SYMLINK_MODE:
                continue
            data = self._blob(hexsha, int(size))
            if isinstance(data, str):
                refused[rel] = data
            else:
                files[rel] = data
        return files, refused

    def _incremental(
        self, previous: Revision, sha: str
    ) -> tuple[dict[str, bytes], dict[str, str], set[str], set[str]]:
        """Apply git's tree diff between ``previous`` and ``sha`` to the previous files."""
        out = self.repo.git.diff_tree(
            "-r",
            "-z",
            "--raw",
            "--no-renames",
            "--no-ext-diff",
            "--no-textconv",
            "--abbrev=40",
            previous.id,
            sha,
            *self._pathspec(),
        )
        files = dict(previous.files)
        refused = dict(previous.refused)
        changed: set[str] = set()
        removed: set[str] = set()
        fields = out.split("\0")
        # Records are ":oldmode newmode oldsha newsha status" followed by the path.
        for i in range(0, len(fields) - 1, 2):
            meta, path = fields[i], fields[i + 1]
            if not meta.startswith(":"):
                continue
            _old_mode, new_mode, _old_sha, new_sha, _status = meta[1:].split()
            rel = self._relative(path)
            if rel is None:
                continue
            present = new_sha != _NULL_SHA and new_mode not in (_SYMLINK_MODE, _GITLINK_MODE)
            if present:
                files.pop(rel, None)
                refused.pop(rel, None)
                data = self._blob(new_sha)
                if isinstance(data, str):
                    refused[rel] = data
                else:
                    files[rel] = data
                changed.add(rel)
                removed.discard(rel)
            elif rel in files or rel in refused:
                files.pop(rel, None)
                refused.pop(rel, None)
                removed.add(rel)
        return files, refused, changed, removed


class _GitSourceBase(BaseSource):
    """What the remote and local git sources share: where, sub-path, the blob size limit and
    error scrubbing."""

    def __init__(
        self,
        description: str,
        *,
        subpath: str,
        poll_interval: float,
        poll: bool,
        secrets: list[str],
        max_file_bytes: int,
        verify: SignaturePolicy | None,
    ) -> None:
        super().__init__(description, poll_interval=poll_interval, poll=poll)
        self.subpath = subpath
        self.max_file_bytes = max_file_bytes
        self.verify = verify
        self._secrets = secrets

    def _verified(self, repo: git.Repo, sha: str, *, where: str) -> None:
        """Raise :class:`SignatureRefused` unless commit ``sha`` is signed by an allowed key
        (nothing to check without a :class:`SignaturePolicy`). Runs in the worker thread."""
        if self.verify is None:
            return
        common = Path(repo.common_dir)
        signer = self.verify.verify(common, sha, env=git_environment(common), where=where)
        log.info("source.signature_verified", source=where, revision=sha, signer=signer)

    def _failure(self, what: str, exc: BaseException) -> FetchFailed:
        """A FetchFailed for ``exc`` naming this source, with credentials scrubbed."""
        detail = _git_error_text(exc)
        return FetchFailed(scrub(f"{self.description}: {what}: {detail}", self._secrets))

    async def _fetch(self, previous: Revision | None) -> Revision | None:
        try:
            return await asyncio.to_thread(self._fetch_sync, previous)
        except FetchFailed as exc:
            kind = SignatureRefused if isinstance(exc, SignatureRefused) else FetchFailed
            raise kind(scrub(str(exc), self._secrets)) from None
        except (git.GitError, OSError, ValueError) as exc:
            raise self._failure("fetch failed", exc) from None

    def _fetch_sync(self, previous: Revision | None) -> Revision | None:
        raise NotImplementedError

    async def read_ref(self, ref: str) -> Revision:
        """The workflow files at ``ref`` (a branch, tag, ``refs/...`` name or commit id), read
        from git objects, for a preview: nothing is checked out, the tracked branch and the
        source's current revision are untouched, and no signature is required (nothing will
        run from it). :class:`RefNotFound` when the repository has no such ref."""
        ref = check_ref(ref)
        try:
            return await asyncio.to_thread(self._read_ref_sync, ref)
        except FetchFailed as exc:
            kind = RefNotFound if isinstance(exc, RefNotFound) else FetchFailed
            raise kind(scrub(str(exc), self._secrets)) from None
        except (git.GitError, OSError, ValueError) as exc:
            raise self._failure(f"reading {ref} failed", exc) from None

    def _read_ref_sync(self, ref: str) -> Revision:
        raise NotImplementedError

    def _read_commit(self, repo: git.Repo, rev: str, *, where: str, ref: str) -> Revision:
        try:
            sha = repo.git.rev_parse("--verify", "-q", "--end-of-options", f"{rev}^{{commit}}")
        except git.GitCommandError:
            raise RefNotFound(f"{where}: {ref} does not exist") from None
        reader = _TreeReader(repo, self.subpath, where=where, limit=self.max_file_bytes)
        return reader.read(str(sha).strip(), None)


def _git_error_text(exc: BaseException) -> str:
    """The useful part of a git failure: its ``fatal:``/``error:`` lines, else the message."""
    if isinstance(exc, git.GitCommandError):
        stderr = exc.stderr if isinstance(exc.stderr, str) else str(exc.stderr or "")
        lines = [
            line.strip().strip("'").strip()
            for line in stderr.splitlines()
            if line.strip().strip("'").strip()
        ]
        lines = [line.removeprefix("stderr: ").strip("'").strip() for line in lines]
        important = [line for line in lines if line.startswith(("fatal:", "error:"))]
        text = "; ".join(important or lines)
        return text or f"git exited with status {exc.status}"
    return str(exc) or type(exc).__name__


class RemoteGitSource(_GitSourceBase):
    """A remote repository, kept as a bare clone under ``<data_dir>/repos/<hash of url>``.

    Only the configured branch is fetched (into ``refs/remotes/origin/<branch>``); with no
    branch given, the remote's default branch (its ``HEAD``) is resolved on the first fetch and
    then kept. Polled, never watched.
    """

    def __init__(
        self,
        url: str,
        *,
        branch: str | None,
        subpath: str,
        data_dir: Path,
        poll_interval: float,
        max_file_bytes: int = MAX_FILE_BYTES,
        verify: SignaturePolicy | None = None,
    ) -> None:
        check_remote_url(url)
        self.url = url
        self.masked_url = mask_url(url)
        self.branch = branch
        key = hashlib.sha256(self.masked_url.encode()).hexdigest()[:16]
        self.cache_dir = Path(data_dir) / "repos" / key
        super().__init__(
            _describe(self.masked_url, branch, subpath),
            subpath=subpath,
            poll_interval=poll_interval,
            poll=True,
            secrets=url_secrets(url),
            max_file_bytes=max_file_bytes,
            verify=verify,
        )

    def private_paths(self) -> tuple[Path, ...]:
        return (self.cache_dir,)

    def _fetch_sync(self, previous: Revision | None) -> Revision | None:
        with self._open_cache() as repo:
            branch = self.branch or self._remote_default_branch(repo)
            where = _describe(self.masked_url, branch, self.subpath)
            ref = f"refs/remotes/{_REMOTE}/{branch}"
            try:
                repo.git.fetch(
                    "--no-tags",
                    "--no-write-fetch-head",
                    _REMOTE,
                    f"+refs/heads/{branch}:{ref}",
                    kill_after_timeout=FETCH_TIMEOUT_SECONDS,
                )
            except git.GitCommandError as exc:
                detail = _git_error_text(exc)
                if "couldn't find remote ref" in detail:
                    raise FetchFailed(
                        f"{where}: branch '{branch}' does not exist in {self.masked_url}"
                    ) from None
                raise FetchFailed(f"{where}: fetch failed: {detail}") from None
            sha = repo.git.rev_parse("--verify", f"{ref}^{{commit}}").strip()
            if previous is not None and previous.id == sha:
                return None
            self._verified(repo, sha, where=where)
            return _TreeReader(repo, self.subpath, where=where, limit=self.max_file_bytes).read(
                sha, previous
            )

    def _read_ref_sync(self, ref: str) -> Revision:
        with self._open_cache() as repo:
            where = f"git {self.masked_url}"
            if _FULL_SHA.match(ref) and self._has_object(repo, ref):
                return self._read_commit(repo, ref, where=where, ref=ref)
            remote = ref if ref.startswith("refs/") or ref == "HEAD" else f"refs/heads/{ref}"
            local = _PREVIEW_REFS + remote.removeprefix("refs/")
            try:
                repo.git.fetch(
                    "--no-tags",
                    "--no-write-fetch-head",
                    _REMOTE,
                    f"+{remote}:{local}",
                    kill_after_timeout=FETCH_TIMEOUT_SECONDS,
                )
            except git.GitCommandError as exc:
                detail = _git_error_text(exc)
                if "couldn't find remote ref" not in detail:
                    raise FetchFailed(f"{where}: fetching {ref} failed: {detail}") from None
                return self._fetch_commit(repo, ref, where=where)
            return self._read_commit(repo, local, where=where, ref=ref)

    def _fetch_commit(self, repo: git.Repo, ref: str, *, where: str) -> Revision:
        """A commit id the remote serves directly (GitHub and GitLab do); else RefNotFound."""
        if not _FULL_SHA.match(ref):
            raise RefNotFound(f"{where}: {ref} does not exist")
        try:
            repo.git.fetch(
                "--no-tags",
                "--no-write-fetch-head",
                _REMOTE,
                ref,
                kill_after_timeout=FETCH_TIMEOUT_SECONDS,
            )
        except git.GitCommandError:
            raise RefNotFound(f"{where}: {ref} does not exist") from None
        return self._read_commit(repo, ref, where=where, ref=ref)

    @staticmethod
    def _has_object(repo: git.Repo, sha: str) -> bool:
        try:
            return bool(repo.git.cat_file("-t", sha).strip() == "commit")
        except git.GitCommandError:
            return False

    @contextmanager
    def _open_cache(self) -> Iterator[git.Repo]:
        """The bare clone, created on first use; the remote URL is (re)set each time so rotated
        credentials take effect."""
        fresh = not (self.cache_dir / "HEAD").exists()
        if fresh:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            # No template: the clone starts without sample hooks or anything else to copy.
            init = git.Git(str(self.cache_dir))
            init.update_environment(**git_environment())
            init.init("--quiet", "--bare", "--template=")
        repo = _open_repo(self.cache_dir)
        try:
            if _REMOTE in [r.name for r in repo.remotes]:
                if repo.git.config("--get", f"remote.{_REMOTE}.url").strip() != self.url:
                    repo.git.remote("set-url", _REMOTE, self.url)
            else:
                repo.git.remote("add", _REMOTE, self.url)
            yield repo
        finally:
            repo.close()

    def _remote_default_branch(self, repo: git.Repo) -> str:
        try:
            out: str = str(
                repo.git.ls_remote(
                    "--symref", _REMOTE, "HEAD", kill_after_timeout=FETCH_TIMEOUT_SECONDS
                )
            )
        except git.GitCommandError as exc:
            raise FetchFailed(
                f"{self.description}: cannot reach the repository: {_git_error_text(exc)}"
            ) from None
        for line in out.splitlines():
            if line.startswith("ref: refs/heads/") and line.endswith("\tHEAD"):
                branch = line.removeprefix("ref: refs/heads/").removesuffix("\tHEAD")
                self.branch = branch
                self.description = _describe(self.masked_url, branch, self.subpath)
                return branch
        raise FetchFailed(
            f"{self.description}: the remote has no default branch (empty repository?); "
            "set --branch"
        )


class LocalGitSource(_GitSourceBase):
    """A git repository on this machine, read at the committed tip of a branch.

    With no branch given, the branch checked out when the source was opened is used (or
    ``HEAD`` itself when detached). Watched through its ``.git`` refs, and polled as a safety net
    for filesystems where notification is unreliable.
    """

    def __init__(
        self,
        path: Path,
        *,
        branch: str | None,
        subpath: str,
        poll_interval: float,
        max_file_bytes: int = MAX_FILE_BYTES,
        verify: SignaturePolicy | None = None,
    ) -> None:
        self.path = Path(path).resolve()
        with _open_repo(self.path) as repo:
            self.git_dir = Path(repo.git_dir).resolve()
            self.common_dir = Path(repo.common_dir).resolve()
            if branch is None:
                try:
                    head = repo.git.symbolic_ref("-q", "HEAD").strip()
                except git.GitCommandError:
                    head = ""  # detached: follow HEAD
                branch = head.removeprefix("refs/heads/") or None
        self.branch = branch
        super().__init__(
            _describe(str(self.path), branch or "HEAD", subpath),
            subpath=subpath,
            poll_interval=poll_interval,
            poll=True,
            secrets=[],
            max_file_bytes=max_file_bytes,
            verify=verify,
        )

    def private_paths(self) -> tuple[Path, ...]:
        return (self.git_dir, self.common_dir)

    def _fetch_sync(self, previous: Revision | None) -> Revision | None:
        with _open_repo(self.path) as repo:
            rev = f"refs/heads/{self.branch}" if self.branch else "HEAD"
            try:
                sha = repo.git.rev_parse("--verify", "-q", f"{rev}^{{commit}}").strip()
            except git.GitCommandError:
                what = f"branch '{self.branch}'" if self.branch else "HEAD"
                raise FetchFailed(
                    f"{self.description}: {what} does not exist or has no commits"
                ) from None
            if previous is not None and previous.id == sha:
                return None
            self._verified(repo, sha, where=self.description)
            return _TreeReader(
                repo, self.subpath, where=self.description, limit=self.max_file_bytes
            ).read(sha, previous)

    def _read_ref_sync(self, ref: str) -> Revision:
        with _open_repo(self.path) as repo:
            return self._read_commit(repo, ref, where=f"git {self.path}", ref=ref)

    def _watch_targets(self) -> tuple[list[Path], Callable[[Path], bool]] | None:
        roots = sorted({self.git_dir, self.common_dir})

        def accept(path: Path) -> bool:
            if path.name.endswith(".lock"):
                return False
            for root in roots:
                try:
                    rel = path.relative_to(root)
                except ValueError:
                    continue
                parts = rel.parts
                if parts and (parts[0] in ("HEAD", "packed-refs", "refs")):
                    return True
            return False

        return list(roots), accept


def _describe(repo: str, branch: str | None, subpath: str) -> str:
    text = f"git {repo} branch {branch or '(default)'}"
    return f"{text} path {subpath}/" if subpath else text
