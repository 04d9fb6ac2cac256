"""The remote git source against real bare repositories over file:// and ``git daemon``."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

import pytest
from sources_helpers import GitDaemon, Remote, git, texts

from reconciler.errors import FetchFailed
from reconciler.sources import RemoteGitSource, Revision, mask_url, open_source
from tests.support.waiting import until_async


def many_files(count: int) -> dict[str, str | None]:
    return {f"workflows/wf-{i:03}.yaml": f"name: wf-{i}\n" for i in range(count)}


async def test_clone_reads_committed_yaml_files_and_ignores_others(
    remote: Remote, tmp_path: Path
) -> None:
    sha = remote.work.commit(
        {"a.yaml": "name: a\n", "nested/b.yml": "name: b\n", "README.md": "hi\n"}, "first"
    )
    remote.work.push()
    source = open_source(remote.file_url, branch="main", data_dir=tmp_path / "data")

    revision = await source.fetch()

    assert isinstance(source, RemoteGitSource)
    assert revision is not None
    assert revision.id == sha
    assert texts(revision) == {"a.yaml": "name: a\n", "nested/b.yml": "name: b\n"}
    assert revision.changed == {"a.yaml", "nested/b.yml"}
    assert revision.removed == frozenset()
    assert revision.previous is None
    assert revision.message == "first"
    assert revision.author == "Test Author"
    assert revision.committed_at is not None
    assert (tmp_path / "data" / "repos").is_dir()
    assert source.current is revision


async def test_fetch_without_new_commit_returns_none(remote: Remote, tmp_path: Path) -> None:
    remote.work.commit({"a.yaml": "x: 1\n"})
    remote.work.push()
    source = open_source(remote.file_url, data_dir=tmp_path / "data")
    first = await source.fetch()

    assert await source.fetch() is None
    assert source.current is first
    assert source.fetch_count_ok == 2
    assert source.last_error is None
    assert source.last_success_at is not None


async def test_new_commit_touching_one_of_many_files_changes_only_that_file(
    remote: Remote, tmp_path: Path
) -> None:
    remote.work.commit(many_files(60))
    remote.work.push()
    source = open_source(remote.file_url, branch="main", data_dir=tmp_path / "data")
    first = await source.fetch()
    assert first is not None
    new_sha = remote.work.commit({"workflows/wf-007.yaml": "name: seven\n"}, "edit seven")
    remote.work.push()

    second = await source.fetch()

    assert second is not None
    assert second.id == new_sha
    assert second.previous == first.id
    assert second.changed == {"workflows/wf-007.yaml"}
    assert second.removed == frozenset()
    assert second.files["workflows/wf-007.yaml"] == b"name: seven\n"
    assert len(second.files) == 60
    # Unchanged blobs are not re-read: the very same bytes objects are carried over.
    assert second.files["workflows/wf-008.yaml"] is first.files["workflows/wf-008.yaml"]


async def test_deleted_added_and_renamed_files_show_in_removed_and_changed(
    remote: Remote, tmp_path: Path
) -> None:
    remote.work.commit({"a.yaml": "a\n", "b.yaml": "b\n", "c.yaml": "c\n"})
    remote.work.push()
    source = open_source(remote.file_url, data_dir=tmp_path / "data")
    await source.fetch()
    remote.work.commit({"a.yaml": None, "d.yaml": "d\n"})
    git(remote.work.path, "mv", "b.yaml", "b2.yaml")
    remote.work.commit({}, "rename b")
    remote.work.push()

    revision = await source.fetch()

    assert revision is not None
    assert revision.removed == {"a.yaml", "b.yaml"}
    assert revision.changed == {"d.yaml", "b2.yaml"}
    assert texts(revision) == {"b2.yaml": "b\n", "c.yaml": "c\n", "d.yaml": "d\n"}


async def test_sub_path_limits_files_and_changes_to_that_directory(
    remote: Remote, tmp_path: Path
) -> None:
    remote.work.commit(
        {"workflows/a.yaml": "a\n", "workflows/deep/b.yaml": "b\n", "other/c.yaml": "c\n"}
    )
    remote.work.push()
    source = open_source(remote.file_url, path="./workflows/", data_dir=tmp_path / "data")
    first = await source.fetch()
    assert first is not None
    assert texts(first) == {"a.yaml": "a\n", "deep/b.yaml": "b\n"}
    assert "path workflows/" in source.description

    outside = remote.work.commit({"other/c.yaml": "c2\n"}, "outside")
    remote.work.push()
    second = await source.fetch()
    assert second is not None
    assert second.id == outside
    assert second.changed == frozenset()
    assert second.removed == frozenset()

    remote.work.commit({"workflows/deep/b.yaml": None, "workflows/e.yaml": "e\n"}, "inside")
    remote.work.push()
    third = await source.fetch()
    assert third is not None
    assert third.changed == {"e.yaml"}
    assert third.removed == {"deep/b.yaml"}


async def test_default_branch_is_the_remotes_head(remote: Remote, tmp_path: Path) -> None:
    remote.work.commit({"main.yaml": "on main\n"})
    remote.work.push("main")
    remote.work.commit({"main.yaml": "on dev\n"})
    remote.work.push("dev")
    source = open_source(remote.file_url, data_dir=tmp_path / "data")

    revision = await source.fetch()

    assert revision is not None
    assert texts(revision) == {"main.yaml": "on main\n"}
    assert "branch main" in source.description
    dev = open_source(remote.file_url, branch="dev", data_dir=tmp_path / "data")
    dev_revision = await dev.fetch()
    assert dev_revision is not None
    assert texts(dev_revision) == {"main.yaml": "on dev\n"}


async def test_missing_branch_fails_naming_repository_and_branch(
    remote: Remote, tmp_path: Path
) -> None:
    remote.work.commit({"a.yaml": "a\n"})
    remote.work.push()
    source = open_source(remote.file_url, branch="nope", data_dir=tmp_path / "data")

    with pytest.raises(FetchFailed) as caught:
        await source.fetch()

    assert "branch 'nope'" in str(caught.value)
    assert remote.file_url in str(caught.value)
    assert source.last_error == str(caught.value)
    assert source.fetch_count_failed == 1
    assert source.current is None


async def test_missing_repository_fails_naming_it(tmp_path: Path) -> None:
    url = (tmp_path / "absent.git").as_uri()
    source = open_source(url, branch="main", data_dir=tmp_path / "data")

    with pytest.raises(FetchFailed, match=r"absent\.git"):
        await source.fetch()


async def test_missing_sub_path_fails_naming_it(remote: Remote, tmp_path: Path) -> None:
    remote.work.commit({"a.yaml": "a\n"})
    remote.work.push()
    source = open_source(remote.file_url, path="workflows", data_dir=tmp_path / "data")

    with pytest.raises(FetchFailed, match="path 'workflows' does not exist") as caught:
        await source.fetch()
    assert "branch main" in str(caught.value)


async def test_moved_away_remote_keeps_last_good_revision_then_catches_up(
    remote: Remote, tmp_path: Path
) -> None:
    remote.work.commit({"a.yaml": "a1\n"})
    remote.work.push()
    source = open_source(remote.file_url, data_dir=tmp_path / "data")
    good = await source.fetch()
    assert good is not None
    remote.work.commit({"a.yaml": "a2\n"})
    remote.work.push()
    moved = tmp_path / "moved.git"
    shutil.move(remote.bare, moved)

    with pytest.raises(FetchFailed):
        await source.fetch()
    assert source.last_error is not None
    assert source.current is good

    shutil.move(moved, remote.bare)
    caught_up = await source.fetch()
    assert caught_up is not None
    assert caught_up.previous == good.id
    assert caught_up.changed == {"a.yaml"}
    assert texts(caught_up) == {"a.yaml": "a2\n"}
    assert source.last_error is None


async def test_git_daemon_clone_and_fetch_of_a_new_commit(
    remote: Remote, git_daemon: GitDaemon, tmp_path: Path
) -> None:
    remote.work.commit({"a.yaml": "a\n", "b.yaml": "b\n"})
    remote.work.push()
    source = open_source(git_daemon.url("repo.git"), branch="main", data_dir=tmp_path / "data")
    first = await source.fetch()
    assert first is not None
    assert texts(first) == {"a.yaml": "a\n", "b.yaml": "b\n"}

    sha = remote.work.commit({"b.yaml": "b2\n"})
    remote.work.push()
    second = await source.fetch()

    assert second is not None
    assert second.id == sha
    assert second.changed == {"b.yaml"}


async def test_git_daemon_down_fails_keeps_revision_and_recovers(
    remote: Remote, git_daemon: GitDaemon, tmp_path: Path
) -> None:
    remote.work.commit({"a.yaml": "a1\n"})
    remote.work.push()
    source = open_source(git_daemon.url("repo.git"), data_dir=tmp_path / "data")
    good = await source.fetch()
    assert good is not None
    git_daemon.stop()
    remote.work.commit({"a.yaml": "a2\n"})
    remote.work.push()

    with pytest.raises(FetchFailed) as caught:
        await source.fetch()
    assert f"127.0.0.1:{git_daemon.port}" in str(caught.value)
    assert source.last_error == str(caught.value)
    assert source.current is good
    assert source.fetch_count_failed == 1

    git_daemon.start()
    caught_up = await source.fetch()
    assert caught_up is not None
    assert texts(caught_up) == {"a.yaml": "a2\n"}
    assert source.last_error is None


async def test_credentials_never_appear_in_description_or_errors(tmp_path: Path) -> None:
    url = "https://deploy-user:s3cr3t-T0ken@127.0.0.1:1/org/repo.git"
    source = open_source(url, branch="main", data_dir=tmp_path / "data")

    with pytest.raises(FetchFailed) as caught:
        await source.fetch()

    assert source.description == "git https://***@127.0.0.1:1/org/repo.git branch main"
    for text in (source.description, str(caught.value), source.last_error or "", repr(source)):
        assert "s3cr3t-T0ken" not in text
        assert "deploy-user" not in text
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    assert "127.0.0.1:1" in str(caught.value)
    # The cache directory name is a hash, not the URL.
    for entry in (tmp_path / "data" / "repos").iterdir():
        assert "s3cr3t" not in entry.name


async def test_credentials_never_appear_in_logs_of_the_retrying_loop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    url = "https://deploy-user:s3cr3t-T0ken@127.0.0.1:1/org/repo.git"
    source = open_source(url, branch="main", data_dir=tmp_path / "data", poll_interval=3600)
    stop = asyncio.Event()

    async def on_revision(revision: Revision) -> None:
        raise AssertionError("an unreachable remote yields no revision")

    with caplog.at_level(logging.DEBUG):
        task = asyncio.create_task(source.run(on_revision, stop=stop))
        # the first attempt and one retry
        await until_async(lambda: source.fetch_count_failed >= 2, 10, "a retried fetch")
        stop.set()
        await asyncio.wait_for(task, timeout=10)

    assert source.fetch_count_failed >= 2
    captured = capsys.readouterr()
    logged = captured.out + captured.err + caplog.text
    assert "source.fetch_failed" in logged
    assert "s3cr3t-T0ken" not in logged
    assert "deploy-user" not in logged


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pass@host/r.git", "https://***@host/r.git"),
        ("https://ghp_tokenonly@github.com/o/r.git", "https://***@github.com/o/r.git"),
        ("ssh://git@host:2222/o/r.git", "ssh://git@host:2222/o/r.git"),
        ("ssh://git:pw@host/o/r.git", "ssh://***@host/o/r.git"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("file:///srv/r.git", "file:///srv/r.git"),
    ],
)
def test_descriptions_mask_passwords_and_tokens_but_keep_plain_ssh_users(
    tmp_path: Path, url: str, shown: str
) -> None:
    source = open_source(url, branch="main", data_dir=tmp_path)
    assert source.description == f"git {shown} branch main"
    assert mask_url(url) == shown
