"""The operator's grants: which paths and variables a workflow may reach."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.daemon.settings import DaemonSettings
from reconciler.errors import EnvNotAllowed, NotAllowed, PathNotAllowed
from reconciler.grants import DEFAULT_ALLOW_ENV, Grants


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "root" / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    return tmp_path / "root"


def test_relative_paths_resolve_against_the_base_inside_the_root(root: Path) -> None:
    grants = Grants.for_daemon(workdir=root, file_roots=None, allow_env=None)
    assert grants.check_path("sub/file.txt", base=root) == root.resolve() / "sub" / "file.txt"


def test_dot_dot_leaving_the_root_is_refused_naming_the_path(root: Path) -> None:
    grants = Grants.for_daemon(workdir=root, file_roots=None, allow_env=None)
    with pytest.raises(PathNotAllowed, match=r"'\.\./outside/x' is not allowed.*--file-root"):
        grants.check_path("../outside/x", base=root)


def test_a_symlink_leaving_the_root_is_refused(root: Path) -> None:
    (root / "escape").symlink_to(root.parent / "outside")
    grants = Grants.for_daemon(workdir=root, file_roots=None, allow_env=None)
    with pytest.raises(PathNotAllowed, match="outside the file roots"):
        grants.check_path("escape/secret", base=root)


def test_proc_sys_and_dev_are_denied_even_when_a_root_covers_them(root: Path) -> None:
    grants = Grants.for_daemon(workdir=root, file_roots=[Path("/")], allow_env=None)
    for path in ("/proc/self/environ", "/sys/kernel", "/dev/zero"):
        with pytest.raises(PathNotAllowed, match="can never reach"):
            grants.check_path(path, base=root)
    assert grants.check_path(root / "sub", base=root) == (root / "sub").resolve()


def test_the_daemons_own_directories_are_denied_inside_a_root(root: Path) -> None:
    data = root / "data"
    data.mkdir()
    grants = Grants.for_daemon(workdir=root, file_roots=None, allow_env=None, deny=[data])
    with pytest.raises(PathNotAllowed):
        grants.check_path("data/repos/x/hooks/post-merge", base=root)


def test_extra_roots_are_granted_and_relative_roots_follow_the_workdir(root: Path) -> None:
    other = root.parent / "outside"
    grants = Grants.for_daemon(workdir=root, file_roots=[Path("sub"), other], allow_env=None)
    assert grants.file_roots == ((root / "sub").resolve(), other.resolve())
    with pytest.raises(PathNotAllowed):
        grants.check_path("file-in-workdir", base=root)
    assert grants.check_path(other / "f", base=root) == other.resolve() / "f"


def test_a_nul_byte_in_a_path_is_refused(root: Path) -> None:
    with pytest.raises(PathNotAllowed, match="NUL"):
        Grants.local(root).check_path("a\x00b", base=root)


def test_read_bytes_refuses_a_fifo_without_blocking(root: Path) -> None:
    fifo = root / "pipe.yaml"
    os.mkfifo(fifo)
    with pytest.raises(PathNotAllowed, match="a FIFO"):
        Grants.local(root).read_bytes(fifo)


def test_read_bytes_refuses_a_final_symlink(root: Path) -> None:
    (root / "real").write_text("x")
    (root / "link").symlink_to(root / "real")
    with pytest.raises(PathNotAllowed, match="symbolic link"):
        Grants.local(root).read_bytes(root / "link")


def test_read_bytes_refuses_a_directory_and_a_file_over_the_cap(root: Path) -> None:
    big = root / "big"
    big.write_bytes(b"x" * 11)
    grants = Grants.for_daemon(workdir=root, file_roots=None, allow_env=None, max_read_bytes=10)
    with pytest.raises(PathNotAllowed, match="11 bytes, more than the 10"):
        grants.read_bytes(big)
    with pytest.raises(PathNotAllowed, match="a directory"):
        grants.read_bytes(root / "sub")
    (root / "small").write_bytes(b"0123456789")
    assert grants.read_bytes(root / "small") == b"0123456789"


def test_read_bytes_passes_ordinary_os_errors_through(root: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Grants.local(root).read_bytes(root / "absent")


def test_env_defaults_to_reconciler_secret_variables_only(root: Path) -> None:
    grants = Grants.local(root)
    assert grants.allow_env == DEFAULT_ALLOW_ENV
    grants.check_env("RECONCILER_SECRET_DB_PASSWORD")
    with pytest.raises(EnvNotAllowed, match="matches no --allow-env glob"):
        grants.check_env("HOME")


@pytest.mark.parametrize(
    "name",
    [
        "RECONCILER_API_TOKEN",
        "RECONCILER_WEBHOOK_SECRET",
        "RECONCILER_VAULT_TOKEN",
        "RECONCILER_STORE",
        "RECONCILER_API_TOKEN_FILE",
        "VAULT_TOKEN",
        "GIT_ASKPASS",
        "PGPASSWORD",
    ],
)
def test_the_daemons_own_variables_are_refused_even_by_a_wildcard(root: Path, name: str) -> None:
    grants = Grants.for_daemon(workdir=root, file_roots=None, allow_env=["*"])
    with pytest.raises(EnvNotAllowed, match="daemon's own settings or credentials"):
        grants.check_env(name)
    grants.check_env("APP_PASSWORD")


@pytest.mark.parametrize(
    "name", ["reconciler_api_token", "Reconciler_Vault_Token", "reconciler_store", "vault_token"]
)
def test_the_daemons_own_variables_are_refused_in_any_letter_case(root: Path, name: str) -> None:
    # the daemon's settings read RECONCILER_* variables whatever their case
    grants = Grants.for_daemon(workdir=root, file_roots=None, allow_env=["*"])
    with pytest.raises(EnvNotAllowed, match="daemon's own settings or credentials"):
        grants.check_env(name)


def test_a_lower_case_daemon_token_is_read_by_the_daemon_but_not_by_env_references(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("reconciler_api_token", "lower-case-daemon-token")
    token = DaemonSettings().api_token
    assert token is not None and token.get_secret_value() == "lower-case-daemon-token"
    grants = Grants.for_daemon(workdir=root, file_roots=None, allow_env=["reconciler_*"])
    with pytest.raises(EnvNotAllowed):
        grants.check_env("reconciler_api_token")


def test_an_empty_env_allow_list_allows_no_variable(root: Path) -> None:
    grants = Grants.for_daemon(workdir=root, file_roots=None, allow_env=[])
    with pytest.raises(EnvNotAllowed, match=r"\(none\)"):
        grants.check_env("RECONCILER_SECRET_X")


def test_refusals_are_routable_not_allowed_errors(root: Path) -> None:
    with pytest.raises(NotAllowed) as caught:
        Grants.local(root).check_env("HOME")
    assert caught.value.names()[:2] == ["EnvNotAllowed", "NotAllowed"]
    assert caught.value.matches("NotAllowed") and not caught.value.retryable


def test_read_file_checks_and_reads_the_same_file_through_symlinks_inside_the_root(
    root: Path,
) -> None:
    (root / "sub" / "real.txt").write_text("content")
    (root / "link.txt").symlink_to(root / "sub" / "real.txt")
    path, data = Grants.local(root).read_file("link.txt", base=root)
    assert (path, data) == ((root / "sub" / "real.txt").resolve(), b"content")


def test_read_file_refuses_what_check_path_and_read_bytes_refuse(root: Path) -> None:
    grants = Grants.for_daemon(workdir=root, file_roots=None, allow_env=None, max_read_bytes=4)
    (root.parent / "outside" / "x").write_text("x")
    (root / "escape").symlink_to(root.parent / "outside" / "x")
    (root / "zero").symlink_to("/dev/zero")
    os.mkfifo(root / "pipe")
    (root / "big").write_bytes(b"12345")
    for name, reason in [
        ("escape", "outside the file roots"),
        ("zero", "can never reach"),
        ("pipe", "a FIFO"),
        ("big", "5 bytes, more than the 4"),
        ("sub", "a directory"),
        ("/proc/self/environ", "can never reach"),
    ]:
        with pytest.raises(PathNotAllowed, match=reason):
            grants.read_file(name, base=root)


def test_read_file_says_not_allowed_before_not_found_outside_the_roots(root: Path) -> None:
    grants = Grants.local(root)
    with pytest.raises(PathNotAllowed):
        grants.read_file("../outside/absent", base=root)
    with pytest.raises(FileNotFoundError):
        grants.read_file("absent", base=root)
