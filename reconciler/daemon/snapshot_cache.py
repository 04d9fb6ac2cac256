"""The snapshot cache: each file's loaded workflows, kept in the data directory by git blob id.

A daemon restarting on files it has loaded before would parse every one of them again (about
two thirds of a cold load is YAML). The :class:`~reconciler.daemon.revision.RevisionApplier`
keeps, after a revision that loaded many files, each file's workflows as normalised models
keyed by the file's git blob id (:func:`blob_id`, git's own id of those bytes, whatever the
source); the first revision after a restart rebuilds every file whose bytes have that id from
the cache (:func:`~reconciler.config.loader.restore_text`) and parses only the others.

What callers may rely on:

* a hit gives the same :class:`~reconciler.config.snapshot.FileResult` as parsing the bytes:
  only files whose load found no problem at all are kept (a file with an error or a warning is
  always parsed again, so its problems and their ``path:line:col`` come from the parser), and
  positions are read again from the file's bytes when a later check needs them;
* the cache is tied to the reconciler version and the workflow schema: a file written by
  another version, or for another schema, is ignored whole;
* a missing cache is silent; an unreadable or corrupt one is a warning and is ignored, never
  fatal (the files are parsed);
* it holds what the files hold (secret references, never secret values), in the data
  directory, which only the daemon reads (see ``docs/security.md``); it is written to a
  temporary file and renamed into place, so a crash never leaves a half-written cache.

Called by: :mod:`reconciler.daemon.revision`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from functools import cache
from pathlib import Path

import structlog
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from reconciler.config.loader import cached_documents
from reconciler.config.models import Workflow
from reconciler.config.snapshot import FileResult
from reconciler.version import __version__

log = structlog.get_logger("reconciler.daemon")

CACHE_FILE = "snapshot-cache.json"
"""The cache's name in the data directory."""
FORMAT = 1
"""Bumped whenever the layout of the cache file changes."""

Documents = list[tuple[int, int, Workflow]]
"""One file's workflows as :func:`~reconciler.config.loader.cached_documents` gives them."""


def blob_id(data: bytes) -> str:
    """Git's blob id of ``data`` (what ``git hash-object`` prints): equal bytes, equal id."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid")

    line: int
    index: int
    workflow: Workflow


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    blob: str
    documents: list[_Document]


class _Cache(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str
    files: list[_File]


_CACHE = TypeAdapter(_Cache)


@cache
def cache_key() -> str:
    """What a cache must have been written under to be read: the reconciler version, the
    cache's format and a digest of the workflow schema."""
    schema = json.dumps(Workflow.model_json_schema(by_alias=True), sort_keys=True)
    return f"{__version__}/{FORMAT}/{hashlib.sha256(schema.encode()).hexdigest()[:16]}"


class SnapshotCache:
    """The cache file of one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / CACHE_FILE
        self._held: frozenset[str] = frozenset()
        """The blob ids the file on disk holds, as far as this process knows."""

    def load(self) -> dict[str, Documents]:
        """Every kept file's documents by blob id; empty when there is no usable cache."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            self._ignored(exc.strerror or type(exc).__name__)
            return {}
        try:
            found = _CACHE.validate_json(raw)
        except ValidationError as exc:
            self._ignored(f"not a snapshot cache ({exc.error_count()} errors)")
            return {}
        if found.key != cache_key():
            log.info(
                "snapshot cache written by another version or schema; every file is parsed",
                path=str(self.path),
            )
            return {}
        held = {f.blob: [(d.line, d.index, d.workflow) for d in f.documents] for f in found.files}
        self._held = frozenset(held)
        return held

    def save(self, files: Mapping[str, FileResult], contents: Mapping[str, bytes]) -> int:
        """Keep every file of ``files`` (by path) that :func:`cached_documents` can keep, with
        the bytes of ``contents``; returns how many. Nothing is written when the cache already
        holds exactly those files; a failure to write is a warning."""
        keep: dict[str, Documents] = {}
        for path, result in files.items():
            data = contents.get(path)
            documents = cached_documents(result) if data is not None else None
            if data is not None and documents is not None:
                keep[blob_id(data)] = documents
        if keep.keys() == self._held:
            return len(keep)
        kept = [
            _File.model_construct(
                blob=blob,
                documents=[
                    _Document.model_construct(line=line, index=index, workflow=workflow)
                    for line, index, workflow in documents
                ],
            )
            for blob, documents in keep.items()
        ]
        payload = _CACHE.dump_json(
            _Cache.model_construct(key=cache_key(), files=kept), by_alias=True, exclude_unset=True
        )
        try:
            self._write(payload)
            self._held = frozenset(keep)
        except OSError as exc:
            log.warning(
                f"cannot write the snapshot cache: {exc.strerror or type(exc).__name__}; "
                "the next start parses every file",
                path=str(self.path),
            )
            return 0
        return len(kept)

    def _write(self, payload: bytes) -> None:
        fd, name = tempfile.mkstemp(prefix=".snapshot-cache-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(payload)
            os.replace(name, self.path)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise

    def _ignored(self, reason: str) -> None:
        log.warning(
            f"snapshot cache unreadable ({reason}); ignored, every file is parsed",
            path=str(self.path),
        )
