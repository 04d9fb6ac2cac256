"""The plain-directory source (development mode): content-hash ids, changed/removed, watching."""

from __future__ import annotations

from pathlib import Path

import pytest
from sources_helpers import next_revision, revision_after, running, texts

from reconciler.errors import FetchFailed
from reconciler.sources import DirectorySource, open_source


def make_dir(root: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content)
    return root


async def test_revision_id_is_a_content_hash_of_the_yaml_files(tmp_path: Path) -> None:
    root = make_dir(tmp_path / "wf", {"a.yaml": "a\n", "sub/b.yml": "b\n", "notes.txt": "x"})
    source = open_source(str(root), data_dir=tmp_path / "data")

    revision = await source.fetch()

    assert isinstance(source, DirectorySource)
    assert revision is not None
    assert revision.id.startswith("dir-")
    assert texts(revision) == {"a.yaml": "a\n", "sub/b.yml": "b\n"}
    assert revision.changed == {"a.yaml", "sub/b.yml"}
    # Same contents elsewhere give the same id; a non-yaml edit changes nothing.
    twin = make_dir(tmp_path / "twin", {"a.yaml": "a\n", "sub/b.yml": "b\n"})
    twin_revision = await open_source(str(twin), data_dir=tmp_path / "data").fetch()
    assert twin_revision is not None
    assert twin_revision.id == revision.id
    (root / "notes.txt").write_text("y")
    assert await source.fetch() is None


async def test_editing_one_file_yields_exactly_that_file_in_changed(tmp_path: Path) -> None:
    root = make_dir(tmp_path / "wf", {f"w{i}.yaml": f"{i}\n" for i in range(20)})
    source = open_source(str(root), data_dir=tmp_path / "data")
    first = await source.fetch()
    assert first is not None

    (root / "w3.yaml").write_text("three\n")
    (root / "w4.yaml").unlink()
    second = await source.fetch()

    assert second is not None
    assert second.id != first.id
    assert second.previous == first.id
    assert second.changed == {"w3.yaml"}
    assert second.removed == {"w4.yaml"}
    assert second.files["w5.yaml"] is first.files["w5.yaml"]


async def test_missing_sub_path_fails_and_recovers_when_created(tmp_path: Path) -> None:
    root = make_dir(tmp_path / "repo", {"x.yaml": "x\n"})
    source = open_source(str(root), path="workflows", data_dir=tmp_path / "data")

    with pytest.raises(FetchFailed, match="workflows"):
        await source.fetch()

    make_dir(root / "workflows", {"a.yaml": "a\n"})
    revision = await source.fetch()
    assert revision is not None
    assert texts(revision) == {"a.yaml": "a\n"}


async def test_branch_for_a_plain_directory_is_rejected(tmp_path: Path) -> None:
    root = make_dir(tmp_path / "wf", {"a.yaml": "a\n"})
    with pytest.raises(ValueError, match="no branches"):
        open_source(str(root), branch="main", data_dir=tmp_path / "data")


async def test_watcher_delivers_a_revision_when_a_file_is_saved(tmp_path: Path) -> None:
    root = make_dir(tmp_path / "wf", {"a.yaml": "a\n", "b.yaml": "b\n"})
    source = open_source(str(root), data_dir=tmp_path / "data", poll_interval=3600)
    async with running(source) as seen:
        first = await next_revision(seen)
        assert first.changed == {"a.yaml", "b.yaml"}

        def save_a(n: int) -> str:
            (root / "a.yaml").write_text(f"a{n + 1}\n")
            return f"a{n + 1}\n"

        second, saved = await revision_after(seen, save_a)
        assert second.changed == {"a.yaml"}
        assert texts(second)["a.yaml"] in saved
