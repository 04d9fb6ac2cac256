"""A plain directory of workflow files (no git): the development-mode source.

Called like the git sources in :mod:`reconciler.sources.git`, but reading the files as they are on disk. A revision's
id is ``dir-<sha256>`` of the paths and contents of every ``*.yaml``/``*.yml`` file, so the same
contents always give the same id; ``changed``/``removed`` come from comparing bytes with the
previous revision. The directory is watched with ``watchfiles`` (see :mod:`.watch`), so saving a
file yields a new revision with exactly that file in ``changed``.

Files are read by :func:`reconciler.config.files.read_tree`, the function ``reconciler validate``
uses too: a symlink leaving the source's root, a FIFO, socket or device (never opened, so a
FIFO cannot block a fetch or the daemon's shutdown) and a file over the size limit (never read)
end up in :attr:`Revision.refused` with the reason, and the other files load.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path

from reconciler.config.files import read_tree
from reconciler.config.loader import MAX_FILE_BYTES
from reconciler.errors import FetchFailed
from reconciler.sources.base import BaseSource, Revision

DIRECTORY_ID_PREFIX = "dir-"


def files_digest(files: Mapping[str, bytes], refused: Mapping[str, str] | None = None) -> str:
    """A stable content hash of ``files`` (and the reasons of ``refused`` paths): independent of
    read order, sensitive to paths."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.encode())
        digest.update(b"\0")
        digest.update(hashlib.sha256(files[path]).digest())
    for path, reason in sorted((refused or {}).items()):
        digest.update(b"\1" + path.encode() + b"\0" + reason.encode() + b"\0")
    return digest.hexdigest()


class DirectorySource(BaseSource):
    """Every workflow file under ``root/subpath``, re-read on each fetch.

    Hidden directories (``.git``, ``.venv``, ...) and files are skipped. Symbolic links to files
    inside ``root`` are followed, others refused; links to directories are not followed (no
    cycles). Files over ``max_file_bytes`` (default: the loader's limit) are refused unread.
    """

    def __init__(
        self,
        root: Path,
        *,
        subpath: str,
        poll_interval: float,
        max_file_bytes: int = MAX_FILE_BYTES,
    ) -> None:
        self.root = Path(root).resolve()
        self.max_file_bytes = max_file_bytes
        self.subpath = subpath
        self.directory = self.root / subpath if subpath else self.root
        description = f"directory {self.root}"
        if subpath:
            description += f" path {subpath}/"
        super().__init__(description, poll_interval=poll_interval, poll=True)

    async def _fetch(self, previous: Revision | None) -> Revision | None:
        return await asyncio.to_thread(self._fetch_sync, previous)

    def _fetch_sync(self, previous: Revision | None) -> Revision | None:
        files, refused = self._read_all()
        revision_id = DIRECTORY_ID_PREFIX + files_digest(files, refused)
        if previous is not None and previous.id == revision_id:
            return None
        old = previous.files if previous is not None else {}
        old_refused = previous.refused if previous is not None else {}
        changed = {path for path, data in files.items() if old.get(path) != data}
        changed |= {path for path, reason in refused.items() if old_refused.get(path) != reason}
        for path in set(files) - changed:
            files[path] = old[path]  # share unchanged bytes with the previous revision
        return Revision(
            id=revision_id,
            files=files,
            changed=frozenset(changed),
            removed=frozenset({*old, *old_refused} - {*files, *refused}),
            previous=previous.id if previous is not None else None,
            refused=refused,
        )

    def _read_all(self) -> tuple[dict[str, bytes], dict[str, str]]:
        if not self.directory.is_dir():
            raise FetchFailed(f"{self.description}: {self.directory} is not a directory")
        try:
            tree = read_tree(self.directory, within=self.root, limit=self.max_file_bytes)
        except OSError as exc:
            raise FetchFailed(f"{self.description}: cannot read: {exc}") from None
        return tree.files, tree.refused

    def _watch_targets(self) -> tuple[list[Path], Callable[[Path], bool]] | None:
        # Any change may matter (a renamed directory holds many files); fetch decides.
        return [self.directory], lambda _path: True
