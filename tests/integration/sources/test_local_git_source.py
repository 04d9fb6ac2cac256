"""The local git source: committed trees only, branch selection, and the ``.git`` watcher."""

from __future__ import annotations

from pathlib import Path

import pytest
from sources_helpers import WorkRepo, git, next_revision, revision_after, running, texts

from reconciler.errors import FetchFailed
from reconciler.sources import LocalGitSource, open_source

NO_POLL = 3600.0  # so only the watcher can notice a change


async def test_uncommitted_edits_are_ignored(work: WorkRepo, tmp_path: Path) -> None:
    sha = work.commit({"a.yaml": "committed\n"})
    source = open_source(str(work.path), data_dir=tmp_path / "data")
    first = await source.fetch()
    assert isinstance(source, LocalGitSource)
    assert first is not None
    assert first.id == sha

    work.write({"a.yaml": "edited, not committed\n", "new.yaml": "untracked\n"})
    git(work.path, "add", "new.yaml")  # staged but not committed either

    assert await source.fetch() is None
    assert source.current is not None
    assert texts(source.current) == {"a.yaml": "committed\n"}


async def test_named_branch_is_read_rather_than_the_checked_out_one(
    work: WorkRepo, tmp_path: Path
) -> None:
    work.commit({"a.yaml": "main\n"})
    git(work.path, "branch", "release")
    work.commit({"a.yaml": "main, later\n"})

    source = open_source(str(work.path), branch="release", data_dir=tmp_path / "data")
    revision = await source.fetch()

    assert revision is not None
    assert texts(revision) == {"a.yaml": "main\n"}
    assert "branch release" in source.description


async def test_default_branch_is_the_one_checked_out_when_opened(
    work: WorkRepo, tmp_path: Path
) -> None:
    work.commit({"a.yaml": "main\n"})
    source = open_source(str(work.path), data_dir=tmp_path / "data")
    git(work.path, "checkout", "-q", "-b", "feature")
    work.commit({"a.yaml": "feature\n"})

    revision = await source.fetch()

    assert revision is not None
    assert texts(revision) == {"a.yaml": "main\n"}
    assert "branch main" in source.description


async def test_repository_without_commits_fails_clearly(work: WorkRepo, tmp_path: Path) -> None:
    source = open_source(str(work.path), data_dir=tmp_path / "data")

    with pytest.raises(FetchFailed, match=r"branch 'main' does not exist or has no commits"):
        await source.fetch()
    assert str(work.path) in (source.last_error or "")


async def test_missing_local_path_fails_naming_it(tmp_path: Path) -> None:
    with pytest.raises(FetchFailed, match="nowhere"):
        open_source(str(tmp_path / "nowhere"), data_dir=tmp_path / "data")


async def test_watcher_sees_a_new_commit_without_polling(work: WorkRepo, tmp_path: Path) -> None:
    work.commit({"wf/a.yaml": "a1\n", "wf/b.yaml": "b1\n"})
    source = open_source(
        str(work.path), path="wf", data_dir=tmp_path / "data", poll_interval=NO_POLL
    )
    async with running(source) as seen:
        first = await next_revision(seen)
        assert first.changed == {"a.yaml", "b.yaml"}
        second, shas = await revision_after(
            seen, lambda n: work.commit({"wf/b.yaml": f"b{n + 1}\n"}, "edit b")
        )
        assert second.id in shas
        assert second.changed == {"b.yaml"}
        assert second.message == "edit b"
