"""Git sources never read a blob over the size limit: the path is refused naming its size.

The limit is injected small (64 KiB) against a blob of a few MB; the default (the loader's
limit) is checked with a blob of one byte more, which git stores compressed to almost nothing.
Memory is measured with ``tracemalloc`` around the fetch: reading the big blob would allocate
at least its size.
"""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

from sources_helpers import Remote, WorkRepo, texts

from reconciler.config.loader import MAX_FILE_BYTES
from reconciler.sources import LocalGitSource, RemoteGitSource, Revision, Source, open_source

LIMIT = 64 * 1024
BIG = 4 * 1024 * 1024


def write_big(repo: WorkRepo, name: str, size: int) -> None:
    (repo.path / name).write_bytes(os.urandom(size // 2).hex().encode()[:size])


async def fetch_measuring_peak(source: Source) -> tuple[Revision, int]:
    tracemalloc.start()
    try:
        revision = await source.fetch()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert revision is not None
    return revision, peak


def limited_source(remote: Remote, tmp_path: Path) -> RemoteGitSource:
    """A source on ``remote`` that refuses files over :data:`LIMIT` bytes."""
    return RemoteGitSource(
        remote.file_url,
        branch="main",
        subpath="",
        data_dir=tmp_path / "data",
        poll_interval=60,
        max_file_bytes=LIMIT,
    )


async def test_a_blob_over_the_limit_is_refused_naming_path_and_size_and_never_read(
    remote: Remote, tmp_path: Path
) -> None:
    write_big(remote.work, "big.yaml", BIG)
    remote.work.commit({"small.yaml": "a: 1\n"})
    remote.work.push()
    source = limited_source(remote, tmp_path)

    revision, peak = await fetch_measuring_peak(source)

    assert texts(revision) == {"small.yaml": "a: 1\n"}
    assert revision.refused == {
        "big.yaml": f"file is {BIG} bytes, larger than the limit of {LIMIT} bytes; "
        "refused without reading it"
    }
    assert revision.changed == {"small.yaml", "big.yaml"}
    assert peak < BIG // 2, f"{peak} bytes allocated while fetching"


async def test_a_commit_that_grows_a_file_past_the_limit_refuses_it_and_shrinking_restores_it(
    remote: Remote, tmp_path: Path
) -> None:
    remote.work.commit({"grows.yaml": "a: 1\n", "other.yaml": "b: 2\n"})
    remote.work.push()
    source = limited_source(remote, tmp_path)
    await source.fetch()

    write_big(remote.work, "grows.yaml", BIG)
    remote.work.commit({})
    remote.work.push()
    grown, peak = await fetch_measuring_peak(source)  # the incremental (tree diff) path

    assert texts(grown) == {"other.yaml": "b: 2\n"}
    assert f"file is {BIG} bytes" in grown.refused["grows.yaml"]
    assert grown.changed == {"grows.yaml"} and grown.removed == frozenset()
    assert peak < BIG // 2, f"{peak} bytes allocated while fetching"

    remote.work.commit({"grows.yaml": "a: 3\n"})
    remote.work.push()
    shrunk = await source.fetch()
    assert shrunk is not None
    assert texts(shrunk) == {"grows.yaml": "a: 3\n", "other.yaml": "b: 2\n"}
    assert shrunk.refused == {} and shrunk.changed == {"grows.yaml"}

    remote.work.commit({"grows.yaml": None})
    remote.work.push()
    write_big(remote.work, "gone.yaml", BIG)
    remote.work.commit({})
    remote.work.push()
    later = await source.fetch()
    assert later is not None and set(later.refused) == {"gone.yaml"}
    remote.work.commit({"gone.yaml": None})
    remote.work.push()
    last = await source.fetch()
    assert last is not None and last.refused == {} and last.removed == {"gone.yaml"}


async def test_the_default_limit_is_the_loaders_for_a_local_repository(
    work: WorkRepo, tmp_path: Path
) -> None:
    with (work.path / "big.yaml").open("wb") as big:  # zeros: git stores them in a few KB
        big.truncate(MAX_FILE_BYTES + 1)
    work.commit({"small.yaml": "a: 1\n"})
    source = open_source(str(work.path), data_dir=tmp_path / "data")
    assert isinstance(source, LocalGitSource)

    revision = await source.fetch()

    assert revision is not None
    assert texts(revision) == {"small.yaml": "a: 1\n"}
    assert f"file is {MAX_FILE_BYTES + 1} bytes" in revision.refused["big.yaml"]
