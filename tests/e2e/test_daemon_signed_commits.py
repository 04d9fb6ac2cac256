"""A real daemon with ``--verify-signatures`` following a real repository: a commit signed by an
allowed SSH key is applied; an unsigned commit on top is not (the workflow keeps the old
revision, the reason shows on ``/readyz``, in the log and as a metric); a signed commit after it
is applied."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.support.daemon import DaemonProcess, running
from tests.support.net import free_port
from tests.support.repos import SigningKey, allowed_signers, commit, init_repo, signed_commit
from tests.support.waiting import until
from tests.support.workflows import file_workflow, put

pytestmark = pytest.mark.timeout(120)


def refused_gauge(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    found = re.search(r"^reconciler_git_signature_refused ([0-9.]+)$", text, re.MULTILINE)
    assert found, "the gauge is exported"
    return float(found.group(1))


def revision_of(url: str, name: str) -> str | None:
    answer = httpx.get(f"{url}/api/v1/workflows/{name}", timeout=5)
    assert answer.status_code == 200, answer.text
    revision: str | None = answer.json()["revision"]
    return revision


def source_error(url: str) -> str | None:
    error: str | None = httpx.get(f"{url}/readyz", timeout=5).json()["source"]["error"]
    return error


def test_only_commits_signed_by_an_allowed_key_are_applied(tmp_path: Path) -> None:
    ops = SigningKey(tmp_path / "keys", "ops")
    signers = allowed_signers(tmp_path / "allowed_signers", ops)
    repo, out = init_repo(tmp_path / "repo"), tmp_path / "motd.txt"
    put(repo, file_workflow("motd", out, "signed one", keep=True))
    first = signed_commit(repo, ops, "first, signed")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    flags = ("--listen", f"127.0.0.1:{port}", "--poll-interval", "1s")
    verify = ("--verify-signatures", "--allowed-signers", str(signers))
    with running(
        repo, tmp_path / "data", *flags, *verify, cwd=tmp_path, log=tmp_path / "daemon.log"
    ) as daemon:
        daemon.wait_ready(url)
        until(lambda: out.exists() and out.read_text() == "signed one", 30, "the signed commit")
        # the file is written by the run; the status naming the revision is stored after it
        until(lambda: revision_of(url, "motd") == first, 30, "the workflow at the signed commit")
        assert refused_gauge(url) == 0

        put(repo, file_workflow("motd", out, "unsigned", keep=True))
        unsigned = commit(repo, "unsigned change")

        until(lambda: unsigned[:12] in (source_error(url) or ""), 30, "the refusal on /readyz")
        error = source_error(url) or ""
        assert f"commit {unsigned[:12]} refused: it is not signed" in error
        assert refused_gauge(url) == 1
        assert revision_of(url, "motd") == first
        assert out.read_text() == "signed one"
        assert refusal_logged(daemon, unsigned)
        readiness = httpx.get(f"{url}/readyz", timeout=5).json()
        assert readiness["source"]["signature_refused"] is True
        # after three poll intervals without an accepted revision, the daemon is not ready
        until(lambda: not_ready_for_the_signature(url), 30, "/readyz to say 503 with why")

        put(repo, file_workflow("motd", out, "signed two", keep=True))
        second = signed_commit(repo, ops, "second, signed")

        until(lambda: out.read_text() == "signed two", 30, "the signed commit on top")
        until(lambda: revision_of(url, "motd") == second, 30, "the workflow at the signed head")
        assert source_error(url) is None
        assert refused_gauge(url) == 0
        until(lambda: httpx.get(f"{url}/readyz", timeout=5).status_code == 200, 30, "ready")


def not_ready_for_the_signature(url: str) -> bool:
    answer = httpx.get(f"{url}/readyz", timeout=5)
    reason = str(answer.json().get("reason"))
    return answer.status_code == 503 and "not signed by an allowed key" in reason


def refusal_logged(daemon: DaemonProcess, sha: str) -> bool:
    return any(
        event.get("event") == "source.fetch_failed" and sha[:12] in str(event.get("error"))
        for event in daemon.events()
    )
