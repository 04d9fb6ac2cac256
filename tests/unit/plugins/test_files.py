"""``file.read`` and ``file.write`` against real files in a temp directory."""

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
    FileRead,
    FileReadRequest,
    FileWrite,
    FileWriteRequest,
    PermissionDenied,
)

from reconciler.errors import Conflict, NotFound
from reconciler.plugin import ActionContext, RunInfo

SECRET = "hunter2-canary"


def make_context(workdir: Path) -> ActionContext:
    return ActionContext(
        run=RunInfo(id="r1", workflow="w"),
        idempotency_key="r1/write/0",
        logger=logging.LoggerAdapter(logging.getLogger("test.files")),
        workdir=workdir,
        redact=lambda text: text.replace(SECRET, "***"),
    )


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


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


async def test_absolute_paths_ignore_the_workdir(tmp_path: Path) -> None:
    target = tmp_path / "abs.txt"
    await write(tmp_path / "elsewhere", path=str(target), content="x")
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
