"""A plain directory of workflow files (no git): the development-mode source.

First stage of the flow (sources → snapshot → planner → queue → runner → store), like the git
sources in :mod:`reconciler.sources.git`, but reading the files as they are on disk. A revision's
id is ``dir-<sha256>`` of the paths and contents of every ``*.yaml``/``*.yml`` file, so the same
contents always give the same id; ``changed``/``removed`` come from comparing bytes with the
previous revision. The directory is watched with ``watchfiles`` (see :mod:`.watch`), so saving a
file yields a new revision with exactly that file in ``changed``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from reconciler.errors import FetchFailed
from reconciler.sources.base import BaseSource, Revision, is_workflow_file

DIRECTORY_ID_PREFIX = "dir-"


def files_digest(files: Mapping[str, bytes]) -> str:
    """A stable content hash of ``files``: independent of read order, sensitive to paths."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.encode())
        digest.update(b"\0")
        digest.update(hashlib.sha256(files[path]).digest())
    return digest.hexdigest()


class DirectorySource(BaseSource):
    """Every workflow file under ``root/subpath``, re-read on each fetch.

    Hidden directories (``.git``, ``.venv``, ...) are skipped. Symbolic links to files are
    followed, links to directories are not (no cycles).
    """

    def __init__(self, root: Path, *, subpath: str, poll_interval: float) -> None:
        self.root = Path(root).resolve()
        self.subpath = subpath
        self.directory = self.root / subpath if subpath else self.root
        description = f"directory {self.root}"
        if subpath:
            description += f" path {subpath}/"
        super().__init__(description, poll_interval=poll_interval, poll=True)

    async def _fetch(self, previous: Revision | None) -> Revision | None:
        return await asyncio.to_thread(self._fetch_sync, previous)

    def _fetch_sync(self, previous: Revision | None) -> Revision | None:
        files = self._read_all()
        revision_id = DIRECTORY_ID_PREFIX + files_digest(files)
        if previous is not None and previous.id == revision_id:
            return None
        old = previous.files if previous is not None else {}
        changed = {path for path, data in files.items() if old.get(path) != data}
        for path in set(files) - changed:
            files[path] = old[path]  # share unchanged bytes with the previous revision
        return Revision(
            id=revision_id,
            files=files,
            changed=frozenset(changed),
            removed=frozenset(set(old) - set(files)),
            previous=previous.id if previous is not None else None,
        )

    def _read_all(self) -> dict[str, bytes]:
        if not self.directory.is_dir():
            raise FetchFailed(f"{self.description}: {self.directory} is not a directory")
        files: dict[str, bytes] = {}
        try:
            for dirpath, dirnames, filenames in os.walk(self.directory, onerror=_raise):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                base = Path(dirpath)
                for name in filenames:
                    if not is_workflow_file(name) or name.startswith("."):
                        continue
                    full = base / name
                    rel = full.relative_to(self.directory).as_posix()
                    try:
                        files[rel] = full.read_bytes()
                    except FileNotFoundError:
                        continue  # deleted while we walked: the watcher will fire again
        except OSError as exc:
            raise FetchFailed(f"{self.description}: cannot read: {exc}") from None
        return files

    def _watch_targets(self) -> tuple[list[Path], Callable[[Path], bool]] | None:
        # Any change may matter (a renamed directory holds many files); fetch decides.
        return [self.directory], lambda _path: True


def _raise(exc: OSError) -> None:
    raise exc
