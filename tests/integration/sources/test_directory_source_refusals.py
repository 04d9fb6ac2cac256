"""The directory source refuses what could stall it, flood it or lead it outside its root.

A refused path is reported in ``Revision.refused`` with its reason (the daemon turns it into a
per-file problem), is never opened or read, and never hides the other files.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sources_helpers import next_revision, running, texts

from reconciler.sources import DirectorySource, Revision, Source, open_source
from tests.support.hostile import plant_hostile_files, release_fifo_readers

GOOD = "good: true\n"


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A directory with one good workflow and every hostile file; FIFO readers released after."""
    root = tmp_path / "wf"
    planted = plant_hostile_files(root, outside=tmp_path / "outside")
    (root / "good.yaml").write_text(GOOD)
    yield root, planted
    release_fifo_readers(root / "fifo.yaml")


async def fetch(source: Source) -> Revision:
    # The bound is a safety net only: a reader that opened the FIFO would block for ever.
    revision = await asyncio.wait_for(source.fetch(), timeout=30)
    assert revision is not None
    return revision


async def test_each_hostile_file_is_refused_with_its_reason_and_the_good_one_loads(
    hostile: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    root, planted = hostile
    revision = await fetch(open_source(str(root), data_dir=tmp_path / "data"))

    assert texts(revision) == {"good.yaml": GOOD}
    assert set(revision.refused) == set(planted)
    for name, reason in planted.items():
        assert reason in revision.refused[name], (name, revision.refused[name])
    assert revision.changed == {"good.yaml", *planted}


async def test_a_symlink_inside_the_root_is_followed(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "shared").mkdir(parents=True)
    (root / "shared" / "common.yaml").write_text(GOOD)
    (root / "workflows").mkdir()
    (root / "workflows" / "linked.yaml").symlink_to(root / "shared" / "common.yaml")
    source = open_source(str(root), path="workflows", data_dir=tmp_path / "data")

    revision = await fetch(source)

    assert texts(revision) == {"linked.yaml": GOOD}
    assert revision.refused == {}


async def test_a_file_over_a_given_limit_is_refused_naming_its_size(tmp_path: Path) -> None:
    root = tmp_path / "wf"
    root.mkdir()
    (root / "small.yaml").write_text("a: 1\n")
    (root / "large.yaml").write_bytes(b"#" * 5000)
    source = DirectorySource(root, subpath="", poll_interval=60, max_file_bytes=1000)

    revision = await fetch(source)

    assert texts(revision) == {"small.yaml": "a: 1\n"}
    assert revision.refused == {
        "large.yaml": "file is 5000 bytes, larger than the limit of 1000 bytes; "
        "refused without reading it"
    }


async def test_a_workflow_replaced_by_an_escaping_symlink_is_a_change_not_a_removal(
    tmp_path: Path,
) -> None:
    root = tmp_path / "wf"
    root.mkdir()
    (root / "alpha.yaml").write_text(GOOD)
    (tmp_path / "secret.yaml").write_text("stolen: true\n")
    source = open_source(str(root), data_dir=tmp_path / "data")
    first = await fetch(source)

    (root / "alpha.yaml").unlink()
    (root / "alpha.yaml").symlink_to(tmp_path / "secret.yaml")
    second = await fetch(source)

    assert second.id != first.id
    assert second.files == {}
    assert "outside the workflow directory" in second.refused["alpha.yaml"]
    assert second.changed == {"alpha.yaml"} and second.removed == frozenset()

    (root / "alpha.yaml").unlink()
    (root / "alpha.yaml").write_text(GOOD)
    third = await fetch(source)
    assert texts(third) == {"alpha.yaml": GOOD} and third.refused == {}
    assert third.changed == {"alpha.yaml"} and third.removed == frozenset()


async def test_a_running_source_with_a_fifo_stops_promptly(
    hostile: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    root, _ = hostile
    source = open_source(str(root), data_dir=tmp_path / "data", poll_interval=3600)
    async with running(source) as seen:  # leaving it sets stop and awaits the loop (10 s max)
        revision = await next_revision(seen, within=30)
        assert "fifo.yaml" in revision.refused
