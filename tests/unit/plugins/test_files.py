"""``file.read``, ``file.write`` and ``file.delete`` against real files in a temp directory."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError
from reconciler_plugins.files import (
    FileDelete,
    FileDeleteRequest,
    FileRead,
    FileReadRequest,
    FileWrite,
    FileWriteRequest,
    PermissionDenied,
)

from reconciler.errors import Conflict, NotFound, PathNotAllowed
from reconciler.grants import Grants
from reconciler.plugin import ActionContext, RunInfo

SECRET = "hunter2-canary"


def make_context(workdir: Path, grants: Grants | None = None) -> ActionContext:
    return ActionContext(
        run=RunInfo(id="r1", workflow="w"),
        idempotency_key="r1/write/0",
        logger=logging.LoggerAdapter(logging.getLogger("test.files")),
        workdir=workdir,
        redact=lambda text: text.replace(SECRET, "***"),
        grants=grants,
    )


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def write(tmp_path: Path, **fields: object) -> tuple[bool, str]:
    response = await FileWrite().run(
        FileWriteRequest.model_validate(fields), make_context(tmp_path)
    )
    return response.changed, response.sha256


# ------------------------------------------------------------------------------------- read


async def test_read_returns_content_size_and_sha256(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("héllo\n", encoding="utf-8")
    response = await FileRead().run(FileReadRequest(path="a.txt"), make_context(tmp_path))
    data = "héllo\n".encode()
    assert response.exists is True
    assert response.content == "héllo\n"
    assert response.size == len(data)
    assert response.sha256 == hashlib.sha256(data).hexdigest()
    assert response.changed is False


async def test_read_of_missing_file_raises_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as info:
        await FileRead().run(FileReadRequest(path="nope.txt"), make_context(tmp_path))
    assert "nope.txt" in str(info.value)
    assert not info.value.retryable


async def test_read_of_missing_file_with_missing_ok_reports_absent(tmp_path: Path) -> None:
    request = FileReadRequest.model_validate({"path": "nope.txt", "missingOk": True})
    response = await FileRead().run(request, make_context(tmp_path))
    assert (response.exists, response.content, response.size) == (False, "", 0)


async def test_read_of_a_directory_raises_conflict(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(Conflict):
        await FileRead().run(FileReadRequest(path="d"), make_context(tmp_path))


async def test_read_redacts_secrets_in_content_but_hashes_the_real_bytes(tmp_path: Path) -> None:
    (tmp_path / "cfg").write_text(f"password={SECRET}\n")
    response = await FileRead().run(FileReadRequest(path="cfg"), make_context(tmp_path))
    assert SECRET not in response.model_dump_json()
    assert response.content == "password=***\n"
    assert response.sha256 == hashlib.sha256(f"password={SECRET}\n".encode()).hexdigest()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
async def test_read_of_unreadable_file_raises_permission_denied(tmp_path: Path) -> None:
    target = tmp_path / "locked"
    target.write_text("x")
    target.chmod(0)
    with pytest.raises(PermissionDenied):
        await FileRead().run(FileReadRequest(path="locked"), make_context(tmp_path))


def test_read_is_a_check_plugin_and_its_request_rejects_unknown_fields() -> None:
    assert FileRead.check is True
    assert FileWrite.check is False
    with pytest.raises(ValidationError):
        FileReadRequest.model_validate({"path": "a", "missing_okk": True})


# ------------------------------------------------------------------------------------ write


async def test_write_creates_the_file_and_its_parent_directories(tmp_path: Path) -> None:
    changed, sha = await write(tmp_path, path="etc/app/app.conf", content="port=8080\n")
    target = tmp_path / "etc/app/app.conf"
    assert changed is True
    assert target.read_text() == "port=8080\n"
    assert sha == hashlib.sha256(b"port=8080\n").hexdigest()
    assert leftovers(target.parent) == []


async def test_second_write_of_same_content_reports_unchanged_and_does_not_touch_the_file(
    tmp_path: Path,
) -> None:
    await write(tmp_path, path="a.conf", content="x=1\n", mode="0640")
    target = tmp_path / "a.conf"
    inode_before = target.stat().st_ino
    os.utime(target, (1_000_000, 1_000_000))

    changed, _ = await write(tmp_path, path="a.conf", content="x=1\n", mode="0640")

    assert changed is False
    assert target.stat().st_ino == inode_before
    assert target.stat().st_mtime == 1_000_000


async def test_write_of_new_content_replaces_the_file_atomically(tmp_path: Path) -> None:
    await write(tmp_path, path="a.conf", content="old\n")
    target = tmp_path / "a.conf"
    inode_before = target.stat().st_ino

    changed, _ = await write(tmp_path, path="a.conf", content="new\n")

    assert changed is True
    assert target.read_text() == "new\n"
    assert target.stat().st_ino != inode_before  # a rename, not an in-place rewrite
    assert leftovers(tmp_path) == []


async def test_write_sets_the_requested_mode(tmp_path: Path) -> None:
    await write(tmp_path, path="secret.key", content="k", mode="0600")
    assert mode_of(tmp_path / "secret.key") == 0o600


async def test_mode_only_change_chmods_without_rewriting(tmp_path: Path) -> None:
    await write(tmp_path, path="run.sh", content="#!/bin/sh\n", mode="0644")
    target = tmp_path / "run.sh"
    inode_before = target.stat().st_ino

    changed, _ = await write(tmp_path, path="run.sh", content="#!/bin/sh\n", mode="0755")

    assert changed is True
    assert mode_of(target) == 0o755
    assert target.stat().st_ino == inode_before


async def test_write_without_mode_keeps_the_existing_mode(tmp_path: Path) -> None:
    target = tmp_path / "a.conf"
    target.write_text("old")
    target.chmod(0o604)
    await write(tmp_path, path="a.conf", content="new")
    assert mode_of(target) == 0o604


async def test_new_file_without_mode_gets_0666_minus_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        await write(tmp_path, path="n.txt", content="x")
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "n.txt") == 0o640


def test_mode_must_be_a_quoted_octal_string() -> None:
    with pytest.raises(ValidationError, match="quoted octal"):
        FileWriteRequest.model_validate({"path": "a", "content": "", "mode": 644})
    with pytest.raises(ValidationError):
        FileWriteRequest.model_validate({"path": "a", "content": "", "mode": "rw-r--r--"})
    assert (
        FileWriteRequest.model_validate({"path": "a", "content": "", "mode": "644"}).mode_bits()
        == 0o644
    )


async def test_write_into_missing_directory_without_make_dirs_raises_not_found(
    tmp_path: Path,
) -> None:
    with pytest.raises(NotFound):
        await write(tmp_path, path="missing/a.conf", content="x", makeDirs=False)
    assert not (tmp_path / "missing").exists()


async def test_write_over_a_directory_raises_conflict(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(Conflict):
        await write(tmp_path, path="d", content="x")


async def test_failed_write_leaves_no_temp_file_and_keeps_the_old_content(tmp_path: Path) -> None:
    # the rename fails because the target became a non-empty directory after the check
    target = tmp_path / "a.conf"
    target.write_text("old")
    plugin = FileWrite()
    request = FileWriteRequest(path="a.conf", content="new " * 100_000)
    task = asyncio.create_task(plugin.run(request, make_context(tmp_path)))
    await asyncio.sleep(0)  # the task has checked the target and started writing the temp file
    target.unlink()
    target.mkdir()
    (target / "keep").write_text("x")

    with pytest.raises(Conflict):
        await task

    assert leftovers(tmp_path) == []
    assert (target / "keep").read_text() == "x"


async def test_cancelled_write_leaves_no_temp_file_and_the_old_content(tmp_path: Path) -> None:
    target = tmp_path / "big.bin"
    target.write_text("old")
    request = FileWriteRequest(path="big.bin", content="z" * (4 * 1024 * 1024))
    task = asyncio.create_task(FileWrite().run(request, make_context(tmp_path)))
    await asyncio.sleep(0)  # let it write its first chunk into the temp file
    assert len(leftovers(tmp_path)) == 1
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task

    assert leftovers(tmp_path) == []
    assert target.read_text() == "old"


async def test_written_then_read_round_trips(tmp_path: Path) -> None:
    _, sha = await write(tmp_path, path="r.txt", content="line\n")
    response = await FileRead().run(FileReadRequest(path="r.txt"), make_context(tmp_path))
    assert response.sha256 == sha
    assert response.content == "line\n"


async def test_absolute_paths_under_a_file_root_ignore_the_workdir(tmp_path: Path) -> None:
    target = tmp_path / "abs.txt"
    grants = Grants.for_daemon(workdir=tmp_path / "elsewhere", file_roots=[tmp_path], allow_env=[])
    request = FileWriteRequest(path=str(target), content="x")
    await FileWrite().run(request, make_context(tmp_path / "elsewhere", grants))
    assert target.read_text() == "x"


async def test_write_through_a_symlink_replaces_its_target_and_keeps_the_link(
    tmp_path: Path,
) -> None:
    real = tmp_path / "real.conf"
    real.write_text("old")
    link = tmp_path / "link.conf"
    link.symlink_to(real)

    changed, _ = await write(tmp_path, path="link.conf", content="new")

    assert changed is True
    assert link.is_symlink()
    assert real.read_text() == "new"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
async def test_rewritten_file_keeps_its_owner_and_group(tmp_path: Path) -> None:
    target = tmp_path / "owned.conf"
    target.write_text("old")
    os.chown(target, 65534, 65534)

    await write(tmp_path, path="owned.conf", content="new")

    assert (target.stat().st_uid, target.stat().st_gid) == (65534, 65534)
    assert target.read_text() == "new"


# ------------------------------------------------------------------ what the grants refuse


def daemon_grants(workdir: Path, *, max_read_bytes: int = 1024 * 1024) -> Grants:
    """The workdir as the only root, ``workdir/data`` denied (as the daemon's data directory)."""
    return Grants.for_daemon(
        workdir=workdir,
        file_roots=None,
        allow_env=[],
        deny=[workdir / "data"],
        max_read_bytes=max_read_bytes,
    )


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the workdir, outside every root, holding ``secret.txt``."""
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "secret.txt").write_text("not for workflows")
    return directory


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    directory = tmp_path / "work"
    (directory / "data").mkdir(parents=True)
    return directory


@pytest.mark.parametrize("path", ["../outside/secret.txt", "sub/../../outside/secret.txt"])
async def test_file_read_with_dot_dot_out_of_the_roots_is_refused(
    workdir: Path, outside: Path, path: str
) -> None:
    with pytest.raises(PathNotAllowed, match="outside the file roots"):
        await FileRead().run(FileReadRequest(path=path), make_context(workdir))


async def test_file_read_of_an_absolute_path_outside_the_roots_is_refused(
    workdir: Path, outside: Path
) -> None:
    request = FileReadRequest(path=str(outside / "secret.txt"))
    with pytest.raises(PathNotAllowed) as info:
        await FileRead().run(request, make_context(workdir, daemon_grants(workdir)))
    assert "not for workflows" not in str(info.value)
    assert not info.value.retryable


async def test_file_read_of_proc_self_environ_is_refused(workdir: Path) -> None:
    grants = Grants.for_daemon(workdir=workdir, file_roots=[Path("/")], allow_env=[])
    request = FileReadRequest(path="/proc/self/environ")
    with pytest.raises(PathNotAllowed, match="workflows can never reach"):
        await FileRead().run(request, make_context(workdir, grants))


async def test_file_read_through_a_symlink_to_dev_zero_is_refused(workdir: Path) -> None:
    (workdir / "zero").symlink_to("/dev/zero")
    with pytest.raises(PathNotAllowed, match="/dev"):
        await FileRead().run(FileReadRequest(path="zero"), make_context(workdir))


@pytest.mark.timeout(10)
async def test_file_read_of_a_fifo_is_refused_without_blocking(workdir: Path) -> None:
    os.mkfifo(workdir / "pipe")  # nobody ever writes: a blocking open would wait forever
    with pytest.raises(PathNotAllowed, match="FIFO"):
        await FileRead().run(FileReadRequest(path="pipe"), make_context(workdir))


async def test_file_read_of_a_file_over_the_read_limit_is_refused(workdir: Path) -> None:
    (workdir / "big").write_bytes(b"x" * 2048)
    grants = daemon_grants(workdir, max_read_bytes=1024)
    with pytest.raises(PathNotAllowed, match="more than the 1024"):
        await FileRead().run(FileReadRequest(path="big"), make_context(workdir, grants))


async def test_file_read_under_the_data_directory_is_refused(workdir: Path) -> None:
    (workdir / "data" / "state.db").write_text("the daemon's")
    request = FileReadRequest(path="data/state.db")
    with pytest.raises(PathNotAllowed, match="can never reach"):
        await FileRead().run(request, make_context(workdir, daemon_grants(workdir)))


@pytest.mark.parametrize("path", ["../outside/new.txt", "../outside/secret.txt"])
async def test_file_write_with_dot_dot_out_of_the_roots_is_refused(
    workdir: Path, outside: Path, path: str
) -> None:
    with pytest.raises(PathNotAllowed, match="outside the file roots"):
        await write(workdir, path=path, content="owned")
    assert names(outside) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "not for workflows"


async def test_file_write_of_an_absolute_path_outside_the_roots_is_refused(
    workdir: Path, outside: Path
) -> None:
    with pytest.raises(PathNotAllowed):
        await write(workdir, path=str(outside / "secret.txt"), content="owned")
    assert (outside / "secret.txt").read_text() == "not for workflows"


async def test_file_write_of_a_git_hook_into_a_denied_clone_is_refused(workdir: Path) -> None:
    hooks = workdir / "data" / "repos" / "clone.git" / "hooks"
    hooks.mkdir(parents=True)
    context = make_context(workdir, daemon_grants(workdir))
    for hook in ("post-merge", "reference-transaction"):
        request = FileWriteRequest.model_validate(
            {"path": f"data/repos/clone.git/hooks/{hook}", "content": "#!/bin/sh\nid\n"}
        )
        with pytest.raises(PathNotAllowed, match="can never reach"):
            await FileWrite().run(request, context)
    assert names(hooks) == []


async def test_file_write_through_a_symlink_leading_out_of_the_roots_is_refused(
    workdir: Path, outside: Path
) -> None:
    (workdir / "link.txt").symlink_to(outside / "secret.txt")
    with pytest.raises(PathNotAllowed):
        await write(workdir, path="link.txt", content="owned")
    assert (outside / "secret.txt").read_text() == "not for workflows"
    assert (workdir / "link.txt").is_symlink()


async def test_file_write_into_a_symlinked_directory_leading_out_of_the_roots_is_refused(
    workdir: Path, outside: Path
) -> None:
    (workdir / "linked").symlink_to(outside, target_is_directory=True)
    with pytest.raises(PathNotAllowed):
        await write(workdir, path="linked/new.txt", content="owned")
    with pytest.raises(PathNotAllowed):
        await write(workdir, path="linked/deeper/new.txt", content="owned")
    assert names(outside) == ["secret.txt"]


async def test_file_write_over_a_fifo_is_refused(workdir: Path) -> None:
    os.mkfifo(workdir / "pipe")
    with pytest.raises(PathNotAllowed, match="FIFO"):
        await write(workdir, path="pipe", content="x")
    assert stat.S_ISFIFO((workdir / "pipe").lstat().st_mode)


async def test_file_write_to_a_symlink_to_dev_null_is_refused(workdir: Path) -> None:
    (workdir / "null").symlink_to("/dev/null")
    with pytest.raises(PathNotAllowed, match="/dev"):
        await write(workdir, path="null", content="x")


@pytest.mark.parametrize("mode", ["4755", "2755", "06777"])
async def test_file_write_of_a_setuid_or_setgid_mode_is_refused(workdir: Path, mode: str) -> None:
    # a set-id program owned by the daemon's user would let any local user act as the daemon
    (workdir / "tool").write_text("#!/bin/sh\n")
    with pytest.raises(ValidationError, match="set-user-ID"):
        await write(workdir, path="tool", content="#!/bin/sh\n", mode=mode)
    with pytest.raises(ValidationError, match="set-user-ID"):
        await write(workdir, path="new-tool", content="\x7fELF", mode=mode, encoding="latin-1")
    assert mode_of(workdir / "tool") & 0o6000 == 0
    assert not (workdir / "new-tool").exists()


# ------------------------------------------------------------------------------------ delete


async def delete(directory: Path, **fields: object) -> bool:
    response = await FileDelete().run(
        FileDeleteRequest.model_validate(fields), make_context(directory)
    )
    return response.changed


async def test_delete_removes_the_file_then_reports_nothing_changed(tmp_path: Path) -> None:
    (tmp_path / "old.conf").write_text("x")
    assert await delete(tmp_path, path="old.conf") is True
    assert not (tmp_path / "old.conf").exists()
    assert await delete(tmp_path, path="old.conf") is False
    assert await delete(tmp_path, path="gone/with/its/directory.conf") is False


async def test_delete_of_a_missing_file_without_missing_ok_raises_not_found(
    tmp_path: Path,
) -> None:
    with pytest.raises(NotFound, match=r"nope\.txt"):
        await delete(tmp_path, path="nope.txt", missingOk=False)


async def test_delete_of_a_directory_raises_conflict_and_removes_nothing(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "keep.txt").write_text("x")
    with pytest.raises(Conflict, match="is a directory"):
        await delete(tmp_path, path="dir")
    assert (tmp_path / "dir" / "keep.txt").exists()


async def test_delete_outside_the_roots_or_under_the_data_directory_is_refused(
    workdir: Path, outside: Path
) -> None:
    (workdir / "data" / "reconciler.db").write_text("store")
    for path in ("../outside/secret.txt", str(outside / "secret.txt"), "data/reconciler.db"):
        with pytest.raises(PathNotAllowed):
            await FileDelete().run(
                FileDeleteRequest(path=path), make_context(workdir, daemon_grants(workdir))
            )
    assert (outside / "secret.txt").exists()
    assert (workdir / "data" / "reconciler.db").exists()


async def test_delete_through_a_symlink_leading_out_of_the_roots_is_refused(
    workdir: Path, outside: Path
) -> None:
    (workdir / "link.txt").symlink_to(outside / "secret.txt")
    with pytest.raises(PathNotAllowed):
        await FileDelete().run(
            FileDeleteRequest(path="link.txt"), make_context(workdir, daemon_grants(workdir))
        )
    assert (outside / "secret.txt").read_text() == "not for workflows"


async def test_delete_of_a_fifo_is_refused(workdir: Path) -> None:
    os.mkfifo(workdir / "pipe")
    with pytest.raises(PathNotAllowed, match="FIFO"):
        await FileDelete().run(
            FileDeleteRequest(path="pipe"), make_context(workdir, daemon_grants(workdir))
        )
    assert stat.S_ISFIFO((workdir / "pipe").lstat().st_mode)
