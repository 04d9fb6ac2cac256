"""The daemon initialises its plugins at start: one that cannot work is named in the log at once,
before any workflow calls it, and the daemon goes on with the others."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.daemon import running
from tests.support.net import free_port
from tests.support.repos import commit, init_repo
from tests.support.waiting import until
from tests.support.workflows import file_workflow, put

pytestmark = pytest.mark.timeout(90)


def test_a_plugin_that_cannot_initialise_is_named_at_start(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo")
    put(repo, file_workflow("motd", tmp_path / "motd.txt", "hello"))  # uses no NATS
    commit(repo, "one workflow")
    nowhere = f"nats://127.0.0.1:{free_port()}"  # nothing listens there
    with running(
        repo,
        tmp_path / "data",
        cwd=tmp_path,
        log=tmp_path / "daemon.log",
        env={"RECONCILER_NATS_URL": nowhere},
    ) as daemon:
        until(
            lambda: daemon.alive() and "plugins initialised" in daemon.log_text(),
            60,
            "the daemon to initialise its plugins",
        )
        until(lambda: (tmp_path / "motd.txt").exists(), 60, "motd to run")
        failed = [
            e for e in daemon.events() if e.get("event", "").startswith("plugin nats.publish")
        ]
        assert failed, daemon.log_text()
        assert failed[0]["level"] == "error" and failed[0]["plugin"] == "nats.publish"
        assert "failed to initialise" in failed[0]["event"]
        assert "RECONCILER_NATS_URL" in failed[0]["event"]
        summary = next(e for e in daemon.events() if "plugins initialised" in e["event"])
        assert not summary["event"].startswith("0 of")
