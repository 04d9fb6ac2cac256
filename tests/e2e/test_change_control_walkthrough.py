"""The walkthrough of ``docs/change-control.md``, run as written: a workflow that may run only
inside a change window waits there for an approval; ``reconciler approvals`` lists it, the
operator the gate does not name is refused, the one it names approves from the CLI, and the
journal names them.

The window of the walkthrough is office hours; here it is "every minute, for an hour", so that
it is open whenever the test runs. Everything else is the document's: the files, the commands
and what they print.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.daemon import CLI, running, without_settings
from tests.support.net import free_port
from tests.support.repos import commit, init_repo
from tests.support.waiting import until

pytestmark = pytest.mark.timeout(150)

ALICE, BOB = "alice-walkthrough-token-1", "bob-walkthrough-token-2"
DOC = Path(__file__).resolve().parents[2] / "docs" / "change-control.md"


def walkthrough_workflow() -> str:
    """The workflow file of the walkthrough, as the document gives it, its window opened."""
    text = DOC.read_text(encoding="utf-8")
    start = text.index("```yaml\n# rotate-motd.yaml")
    block = text[start + len("```yaml\n") : text.index("```", start + 8)]
    for office_hours, always in (
        ('schedule: "0 9 * * 1-5"', 'schedule: "* * * * *"'),
        ("duration: 8h", "duration: 1h"),
        ("timeZone: Europe/Berlin", "timeZone: UTC"),
    ):
        assert office_hours in block, office_hours
        block = block.replace(office_hours, always)
    return block


def cli(*args: str, token: str, url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**without_settings(), "RECONCILER_API_TOKEN": token, "RECONCILER_SERVER": url}
    env["COLUMNS"] = "200"
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=60
    )


def tokens_file(path: Path, cwd: Path) -> None:
    """The tokens file, built with ``reconciler tokens hash`` as the walkthrough does."""
    entries = []
    for name, token in (("alice", ALICE), ("bob", BOB)):
        hashed = subprocess.run(
            [*CLI, "tokens", "hash", "--name", name, "-o", "json"],
            input=token,
            capture_output=True,
            text=True,
            env=without_settings(),
            cwd=cwd,
            timeout=60,
            check=True,
        )
        entries.append(json.loads(hashed.stdout))
    path.write_text(yaml.safe_dump(entries))


def test_an_approval_inside_a_change_window_approved_from_the_cli(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo")
    (repo / "rotate-motd.yaml").write_text(walkthrough_workflow())
    commit(repo, "rotate the motd, with an approval inside office hours")
    tokens_file(tmp_path / "tokens.yaml", tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running(
        repo,
        tmp_path / "data",
        "--listen",
        f"127.0.0.1:{port}",
        "--api-tokens-file",
        str(tmp_path / "tokens.yaml"),
        "--workdir",
        str(work),
        cwd=tmp_path,
        log=tmp_path / "daemon.log",
    ) as daemon:
        daemon.wait_ready(url)

        def listed() -> list[dict[str, Any]]:
            daemon.alive()
            return httpx.get(f"{url}/api/v1/approvals", timeout=10).json()["runs"]  # type: ignore[no-any-return]

        [waiting] = until(listed, 60, "the run to wait for its approval")
        table = cli("approvals", token=ALICE, url=url, cwd=tmp_path)
        assert table.returncode == 0, table.stderr
        assert "rotate-motd" in table.stdout and "Write 'maintenance tonight'" in table.stdout
        status = httpx.get(f"{url}/api/v1/workflows/rotate-motd", timeout=10).json()
        assert status["window"]["state"] == "open"

        # only bob may decide this gate: alice is refused, and nothing is recorded
        refused = cli("approve", waiting["id"][:8], token=ALICE, url=url, cwd=tmp_path)
        assert refused.returncode == 2
        assert "token 'alice' may not decide state 'ask'" in refused.stderr
        assert f" {waiting['approval']['request']} " in table.stdout  # the REQUEST column
        approved = cli(
            "approve",
            waiting["id"][:8],
            "--request",
            str(waiting["approval"]["request"]),
            "-m",
            "change 4711",
            token=BOB,
            url=url,
            cwd=tmp_path,
        )
        assert approved.returncode == 0, approved.stderr
        assert f"approval of run {waiting['id']}" in approved.stdout

        def finished() -> dict[str, Any] | None:
            daemon.alive()
            run = httpx.get(f"{url}/api/v1/runs/{waiting['id']}", timeout=10).json()
            return run if run["status"] != "running" else None

        run = until(finished, 60, "the approved run to finish")
        assert run["status"] == "succeeded"
        assert (work / "motd.txt").read_text() == "maintenance tonight"
        shown = cli("runs", waiting["id"], token=ALICE, url=url, cwd=tmp_path)
        assert "approval_decided" in shown.stdout
        [decided] = [e for e in run["journal"] if e["kind"] == "approval_decided"]
        assert (decided["detail"]["by"], decided["detail"]["comment"]) == ("bob", "change 4711")
