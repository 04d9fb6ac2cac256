"""The daemon's git runs nothing the repository (or anything else on disk) asks it to.

Each test plants, in the daemon's bare clone or a local repository's ``.git``, something git
would execute — a hook, ``core.hooksPath``, ``core.fsmonitor``, a credential helper, an askpass
program, a git proxy, a URL rewrite to ``ext::`` — as a script that appends to a marker file,
then lets the source fetch. The marker must never appear, and fetches that can succeed still do.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sources_helpers import Remote, WorkRepo, git, texts

from reconciler.errors import FetchFailed
from reconciler.sources import RemoteGitSource, open_source
from reconciler.sources.git import git_environment
from tests.support.net import free_port

HOOKS = ("reference-transaction", "post-merge", "post-checkout", "pre-auto-gc", "post-update")


class Trap:
    """An executable that records each call in ``marker``: planted wherever git might run it."""

    def __init__(self, base: Path) -> None:
        base.mkdir(parents=True, exist_ok=True)
        self.marker = base / "marker"
        self.script = base / "trap.sh"
        self.script.write_text(f'#!/bin/sh\necho "$0 $*" >> {self.marker}\nexit 0\n')
        self.script.chmod(0o755)
        self.hooks = base / "hooks"
        self.hooks.mkdir()
        for hook in HOOKS:
            plant_hook(self.hooks, hook, self)

    def calls(self) -> str:
        return self.marker.read_text() if self.marker.exists() else ""

    def config(self) -> tuple[tuple[str, str], ...]:
        """Git settings that would run the trap: a hooks path, an fsmonitor, and an auto gc."""
        return (
            ("core.hooksPath", str(self.hooks)),
            ("core.fsmonitor", str(self.script)),
            ("gc.auto", "1"),
        )


def plant_hook(hooks: Path, name: str, trap: Trap) -> None:
    hooks.mkdir(parents=True, exist_ok=True)
    (hooks / name).write_text(f'#!/bin/sh\nexec {trap.script} hook {name} "$@"\n')
    (hooks / name).chmod(0o755)


@pytest.fixture
def trap(tmp_path: Path) -> Trap:
    return Trap(tmp_path / "trap")


def clone_dir(source: RemoteGitSource) -> Path:
    [clone] = source.private_paths()
    return clone


def set_config(git_dir: Path, *pairs: tuple[str, str]) -> None:
    for key, value in pairs:
        git(git_dir, "--git-dir", str(git_dir), "config", key, value)


async def cloned(remote: Remote, tmp_path: Path) -> RemoteGitSource:
    """A source on ``remote`` that has fetched its first commit, so its clone exists."""
    remote.work.commit({"a.yaml": "one\n"})
    remote.work.push()
    source = open_source(remote.file_url, branch="main", data_dir=tmp_path / "data")
    assert isinstance(source, RemoteGitSource)
    assert await source.fetch() is not None
    return source


async def test_hooks_written_into_the_daemons_bare_clone_never_run(
    remote: Remote, tmp_path: Path, trap: Trap
) -> None:
    source = await cloned(remote, tmp_path)
    clone = clone_dir(source)
    for hook in HOOKS:
        plant_hook(clone / "hooks", hook, trap)
    # Make every fetch end in an automatic gc, so pre-auto-gc would be asked too.
    set_config(clone, ("gc.auto", "1"), ("gc.autoPackLimit", "1"))

    for round_ in range(2):
        remote.work.commit({"a.yaml": f"round {round_}\n"})
        remote.work.push()
        revision = await source.fetch()
        assert revision is not None
        assert texts(revision) == {"a.yaml": f"round {round_}\n"}

    assert trap.calls() == ""


async def test_hooks_path_and_fsmonitor_set_in_the_clones_config_never_run(
    remote: Remote, tmp_path: Path, trap: Trap
) -> None:
    source = await cloned(remote, tmp_path)
    set_config(clone_dir(source), *trap.config())

    remote.work.commit({"a.yaml": "two\n"})
    remote.work.push()
    revision = await source.fetch()

    assert revision is not None and texts(revision) == {"a.yaml": "two\n"}
    assert trap.calls() == ""


def commit_without_running_anything(work: WorkRepo, files: dict[str, str]) -> str:
    """The test's own commit in a repository full of traps: hooks and fsmonitor off for it."""
    work.write(files)
    quiet = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false")
    git(work.path, *quiet, "add", "-A")
    git(work.path, *quiet, "commit", "-q", "-m", "change")
    return work.head()


async def test_hooks_hooks_path_and_fsmonitor_of_a_local_repository_never_run(
    work: WorkRepo, tmp_path: Path, trap: Trap
) -> None:
    work.commit({"a.yaml": "one\n"})
    dot_git = work.path / ".git"
    for hook in HOOKS:
        plant_hook(dot_git / "hooks", hook, trap)
    source = open_source(str(work.path), data_dir=tmp_path / "data")
    first = await source.fetch()
    assert first is not None
    set_config(dot_git, *trap.config())

    sha = commit_without_running_anything(work, {"a.yaml": "two\n"})
    second = await source.fetch()

    assert second is not None and second.id == sha and texts(second) == {"a.yaml": "two\n"}
    assert trap.calls() == ""


async def test_a_url_rewrite_to_ext_in_the_clones_config_is_refused(
    remote: Remote, tmp_path: Path, trap: Trap
) -> None:
    source = await cloned(remote, tmp_path)
    set_config(
        clone_dir(source),
        ("protocol.ext.allow", "always"),
        (f"url.ext::sh -c {trap.script}% ext.insteadOf", remote.file_url),
    )

    with pytest.raises(FetchFailed):
        await source.fetch()

    assert trap.calls() == ""


@pytest.mark.parametrize("url", ["ext::sh -c touch% /tmp/reconciler-ext", "fd::3", "ftp://h/r"])
def test_a_remote_url_with_a_transport_that_can_run_commands_is_refused(
    url: str, tmp_path: Path
) -> None:
    with pytest.raises(FetchFailed, match="not allowed") as refused:
        open_source(url, data_dir=tmp_path / "data")
    assert "touch" not in str(refused.value)
    assert not (tmp_path / "data").exists()


class _Unauthorized(http.server.BaseHTTPRequestHandler):
    """A git host that asks for credentials on every request."""

    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="git"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def asking_host() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Unauthorized)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/ops.git"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    "planted",
    [
        pytest.param(lambda trap: [("credential.helper", f"!{trap.script}")], id="credential"),
        pytest.param(lambda trap: [("core.askPass", str(trap.script))], id="askpass"),
    ],
)
async def test_credential_programs_from_the_clones_config_never_run(
    asking_host: str,
    tmp_path: Path,
    trap: Trap,
    planted: Callable[[Trap], list[tuple[str, str]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("GIT_ASKPASS", "SSH_ASKPASS", "GIT_CONFIG_COUNT"):
        monkeypatch.delenv(name, raising=False)
    source = open_source(asking_host, branch="main", data_dir=tmp_path / "data")
    assert isinstance(source, RemoteGitSource)
    with pytest.raises(FetchFailed):
        await source.fetch()  # creates the clone; the host wants credentials
    set_config(clone_dir(source), *planted(trap))

    with pytest.raises(FetchFailed):
        await source.fetch()

    assert trap.calls() == ""


async def test_a_git_proxy_command_from_the_clones_config_never_runs(
    tmp_path: Path, trap: Trap, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GIT_PROXY_COMMAND", raising=False)
    url = f"git://127.0.0.1:{free_port()}/ops.git"  # nothing listens there
    source = open_source(url, branch="main", data_dir=tmp_path / "data")
    assert isinstance(source, RemoteGitSource)
    with pytest.raises(FetchFailed):
        await source.fetch()
    set_config(clone_dir(source), ("core.gitProxy", str(trap.script)))

    with pytest.raises(FetchFailed):
        await source.fetch()

    assert trap.calls() == ""


def test_the_operators_git_config_entries_are_kept_between_the_reset_and_the_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "credential.helper")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "!operator-helper")
    repo = tmp_path / "repo.git"
    git(tmp_path, "init", "-q", "--bare", str(repo))
    set_config(repo, ("filter.lfs.smudge", "git-lfs smudge"), ("filter.lfs.process", "x"))

    env = git_environment(repo)

    entries = [
        (env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"])
        for i in range(int(env["GIT_CONFIG_COUNT"]))
    ]
    assert entries[:2] == [("credential.helper", ""), ("credential.helper", "!operator-helper")]
    assert ("core.hooksPath", "/dev/null") in entries[2:]
    assert ("core.fsmonitor", "false") in entries[2:]
    assert {("filter.lfs.process", ""), ("filter.lfs.smudge", ""), ("filter.lfs.clean", "")} <= set(
        entries
    )
    assert env["GIT_CONFIG_NOSYSTEM"] == "1" and env["GIT_CONFIG_GLOBAL"] == "/dev/null"
    assert env["GIT_ALLOW_PROTOCOL"] == "https:http:ssh:git:file"
