"""A commit cannot take over the daemon: a real ``reconciler run`` refuses what it was not granted.

The repository is a remote (a ``file://`` URL), so the daemon keeps a bare clone under its data
directory, ``<workdir>/.reconciler/repos/<key>`` — inside the file root, but denied. Every attack
is one workflow of the same commit; each must end refused with a named error (``PathNotAllowed``,
``EnvNotAllowed``) while an honest workflow next to them converges, and none of the daemon's
credentials may show in its status, its API answer or its log.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from reconciler.sources import open_source
from reconciler.store import Health, WorkflowStatusRecord
from tests.support.daemon import DaemonProcess, run_args, spawn, statuses
from tests.support.net import free_port
from tests.support.repos import commit, init_repo
from tests.support.waiting import until_async

pytestmark = pytest.mark.timeout(120)

CREDENTIALS = {
    "RECONCILER_API_TOKEN": "canary-api-token-5d1e9a",
    "RECONCILER_WEBHOOK_SECRET": "canary-webhook-secret-77b2c0",
    "VAULT_TOKEN": "canary-vault-token-3f8e41",
    "PGPASSWORD": "canary-pgpassword-a0c6d2",
}
"""The daemon's own credentials, set in its environment: no workflow may ever see one."""

HEAD = """\
apiVersion: reconciler/v1
kind: Workflow
metadata: {{name: {name}}}
spec:
  interval: 1h
"""

TAIL = """\
      next: done
      onError: failed
    done: {end: success}
    failed: {end: failure}
"""


def action_workflow(name: str, plugin: str, path: str, content: str | None = None) -> str:
    """``plugin`` on ``path``, the path passed through ``${{ }}`` so only the run can check it."""
    with_ = '{path: "${{ inputs.path }}"'
    if content is not None:
        with_ += f', content: "{content}", mode: "0755"'
    return (
        HEAD.format(name=name)
        + f'  inputs: {{path: "{path}"}}\n  start: a\n  states:\n    a:\n'
        + f"      action: {{plugin: {plugin}, with: {with_}}}}}\n"
        + TAIL
    )


def secret_workflow(name: str, ref: str) -> str:
    return (
        HEAD.format(name=name)
        + f'  secrets: {{t: "{ref}"}}\n  start: a\n  states:\n    a:\n'
        + '      action: {plugin: file.write, with: {path: out/t, content: "${{ secrets.t }}"}}\n'
        + TAIL
    )


def probe_workflow(name: str, path: str) -> str:
    return (
        HEAD.format(name=name)
        + f'  inputs: {{path: "{path}"}}\n'
        + '  observe: {plugin: file.read, with: {path: "${{ inputs.path }}"}}\n'
        + "  desired: {exists: true}\n  start: a\n  states:\n    a:\n"
        + '      action: {plugin: file.write, with: {path: out/probe, content: "x"}}\n'
        + TAIL
    )


async def settled(
    data_dir: Path, expected: dict[str, Callable[[WorkflowStatusRecord], bool]]
) -> dict[str, WorkflowStatusRecord]:
    """The statuses once each workflow's predicate holds (polled; fails after 60 s)."""

    async def all_settled() -> dict[str, WorkflowStatusRecord] | None:
        seen = await statuses(data_dir) if (data_dir / "reconciler.db").exists() else {}
        done = all(name in seen and check(seen[name]) for name, check in expected.items())
        return seen if done else None

    found = await until_async(all_settled, 60, f"{sorted(expected)} to settle", interval=0.2)
    assert found is not None
    return found


def refused(
    error: str, *, health: Health = Health.DEGRADED
) -> Callable[[WorkflowStatusRecord], bool]:
    return lambda s: s.status is health and f"{error}:" in s.message


def invalid(error: str) -> Callable[[WorkflowStatusRecord], bool]:
    return refused(error, health=Health.INVALID)


def reported(error: str) -> Callable[[WorkflowStatusRecord], bool]:
    return lambda s: f"{error}:" in s.message


def start_daemon(url: str, data_dir: Path, *, cwd: Path, port: int, log: Path) -> DaemonProcess:
    """``reconciler run`` on ``url`` with only ``file.*`` plugins, every variable allowed by
    glob, the daemon's credentials in its environment and its API on ``port``."""
    return spawn(
        run_args(
            url,
            data_dir,
            "--allow-plugins",
            "file.*",
            "--allow-env",
            "*",
            "--poll-interval",
            "300ms",
        ),
        cwd=cwd,
        log=log,
        env={**CREDENTIALS, "RECONCILER_LISTEN": f"127.0.0.1:{port}"},
    )


@pytest.fixture
def layout(tmp_path: Path) -> Iterator[dict[str, Path]]:
    """``work`` (the daemon's cwd, workdir and only file root) holding the data directory
    ``.reconciler``; ``outside`` next to it with a file no workflow may read."""
    work, outside = tmp_path / "work", tmp_path / "outside"
    work.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("outside the roots")
    yield {
        "work": work,
        "outside": outside,
        "data": work / ".reconciler",
        "repo": tmp_path / "repo",
    }


async def test_a_commit_cannot_reach_the_clone_the_proc_files_the_daemons_variables_or_devices(
    tmp_path: Path, layout: dict[str, Path]
) -> None:
    work, outside, data_dir = layout["work"], layout["outside"], layout["data"]
    repo = init_repo(layout["repo"])
    url = f"file://{repo}"
    [clone] = open_source(url, data_dir=data_dir, poll_interval=1.0).private_paths()
    marker = tmp_path / "pwned"
    hook = f"#!/bin/sh\\ntouch {marker}\\n"
    os.mkfifo(work / "pipe")
    (work / "zero").symlink_to("/dev/zero")

    files = {
        "honest": action_workflow("honest", "file.write", "out/ok.txt", "ok"),
        # runtime checks: the path comes through ${{ }}
        "hook-post-merge": action_workflow(
            "hook-post-merge", "file.write", f"{clone}/hooks/post-merge", hook
        ),
        "hook-reference-transaction": action_workflow(
            "hook-reference-transaction",
            "file.write",
            ".reconciler/repos/" + clone.name + "/hooks/reference-transaction",
            hook,
        ),
        "dotdot-read": action_workflow("dotdot-read", "file.read", "../outside/secret.txt"),
        "dotdot-write": action_workflow("dotdot-write", "file.write", "../outside/new", "x"),
        "absolute-write": action_workflow(
            "absolute-write", "file.write", str(outside / "secret.txt"), "x"
        ),
        "fifo-read": action_workflow("fifo-read", "file.read", "pipe"),
        "environ-probe": probe_workflow("environ-probe", "/proc/self/environ"),
        # static checks: literal references are refused when the commit is validated
        "env-api-token": secret_workflow("env-api-token", "env:RECONCILER_API_TOKEN"),
        "env-webhook-secret": secret_workflow(
            "env-webhook-secret", "env:RECONCILER_WEBHOOK_SECRET"
        ),
        "env-vault-token": secret_workflow("env-vault-token", "env:VAULT_TOKEN"),
        "env-pgpassword": secret_workflow("env-pgpassword", "env:PGPASSWORD"),
        "file-dev-zero": secret_workflow("file-dev-zero", "file:/dev/zero"),
        "file-zero-link": secret_workflow("file-zero-link", "file:zero"),
        "literal-hook": action_workflow("literal-hook", "file.read", "x").replace(
            '"${{ inputs.path }}"', f'"{clone}/hooks/post-merge"'
        ),
    }
    for name, text in files.items():
        (repo / f"{name}.yaml").write_text(text)
    commit(repo, "an honest workflow and many attacks")

    port = free_port()
    proc = start_daemon(url, data_dir, cwd=work, port=port, log=tmp_path / "daemon.log")
    try:
        found = await settled(
            data_dir,
            {
                "honest": lambda s: s.status is Health.CONVERGED,
                "hook-post-merge": refused("PathNotAllowed"),
                "hook-reference-transaction": refused("PathNotAllowed"),
                "dotdot-read": refused("PathNotAllowed"),
                "dotdot-write": refused("PathNotAllowed"),
                "absolute-write": refused("PathNotAllowed"),
                "fifo-read": refused("PathNotAllowed"),
                "environ-probe": reported("PathNotAllowed"),
                "env-api-token": invalid("EnvNotAllowed"),
                "env-webhook-secret": invalid("EnvNotAllowed"),
                "env-vault-token": invalid("EnvNotAllowed"),
                "env-pgpassword": invalid("EnvNotAllowed"),
                "file-dev-zero": invalid("PathNotAllowed"),
                "file-zero-link": invalid("PathNotAllowed"),
                "literal-hook": invalid("PathNotAllowed"),
            },
        )
        assert "can never reach" in found["hook-post-merge"].message
        assert "can never reach" in found["hook-reference-transaction"].message
        assert "FIFO" in found["fifo-read"].message
        assert "daemon's own" in found["env-api-token"].message

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            answers = [
                await client.get(f"/api/v1/workflows/{name}") for name in ("environ-probe", *files)
            ]
        assert all(a.status_code == 200 for a in answers), [a.status_code for a in answers]
        assert "PathNotAllowed" in answers[0].text

        # a later commit makes the daemon fetch into its clone: no hook may run
        (repo / "honest.yaml").write_text(
            action_workflow("honest", "file.write", "out/ok.txt", "2")
        )
        commit(repo, "a change that updates the clone's refs")
        await settled(
            data_dir,
            {
                "honest": lambda s: (
                    s.status is Health.CONVERGED and (work / "out/ok.txt").read_text() == "2"
                )
            },
        )
    finally:
        code = proc.stop(within=30)
    assert code == 0, proc.log_text()[-3000:]

    assert not marker.exists()
    for hook_name in ("post-merge", "reference-transaction"):
        assert not (clone / "hooks" / hook_name).exists(), f"{hook_name} was written"
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "outside the roots"
    shown = proc.log_text() + "".join(a.text for a in answers)
    shown += "".join(s.model_dump_json() for s in found.values())
    for variable, value in CREDENTIALS.items():
        assert value not in shown, f"{variable} leaked"
    assert "outside the roots" not in shown
