"""The web page in headless Chromium against a real daemon process: see, open, sync, live — and
never show old data as current: a banner while the repository cannot be fetched (git's message,
no credential), another with the time of the last good data once the daemon is gone.

Chromium is Debian's (``/usr/bin/chromium``, installed by ``.ci/run``) driven by Playwright; the
daemon is a real ``reconciler run`` on a git repository in ``tmp_path``. Screenshots of the page
are saved in the test's output directory (``tmp_path``) and copied to ``test-output/``.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.support.daemon import DaemonProcess, running
from tests.support.net import free_port
from tests.support.repos import SigningKey, allowed_signers, commit, signed_commit
from tests.support.waiting import until
from tests.support.workflows import file_workflow, gated_workflow, put

playwright_sync = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.timeout(120)

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "page-test-token"
CANARY = "canary-7f3e1c9a-never-shown"

SLOW = """\
apiVersion: reconciler/v1
kind: Workflow
metadata: {name: slow}
spec:
  interval: 1h
  secrets: {canary: env:RECONCILER_SECRET_PAGE_CANARY}
  start: work
  states:
    work:
      action:
        plugin: shell.run
        with: {argv: [sh, -c, "sleep 2; echo done", "${{ secrets.canary }}"], changed: false}
      next: done
      onError: failed
    done: {end: success}
    failed: {end: failure}
"""


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())  # type: ignore[no-any-return]


@contextmanager
def serving(tmp_path: Path, repo: Path | str, *flags: str) -> Iterator[tuple[str, DaemonProcess]]:
    """``reconciler run`` on ``repo`` with ``flags``, serving at the base URL it yields."""
    port = free_port()
    with running(
        repo,
        tmp_path / "data",
        "--listen",
        f"127.0.0.1:{port}",
        *flags,
        cwd=tmp_path,
        log=tmp_path / "daemon.log",
        env={"RECONCILER_API_TOKEN": TOKEN, "RECONCILER_SECRET_PAGE_CANARY": CANARY},
    ) as process:
        yield f"http://127.0.0.1:{port}", process


@contextmanager
def converged(tmp_path: Path, repo: Path, *flags: str) -> Iterator[tuple[str, DaemonProcess]]:
    """A daemon serving its API and page, once both workflows (slow, motd) converged."""
    (repo / "slow.yaml").write_text(SLOW)
    put(repo, file_workflow("motd", "motd.txt", "hello\n", keep=True))
    commit(repo, "two workflows")
    with serving(tmp_path, repo, *flags) as (base, process):

        def both() -> bool:
            process.alive()
            try:
                listed = get_json(f"{base}/api/v1/workflows")["workflows"]
            except OSError:
                return False
            statuses = {w["name"]: w["status"] for w in listed}  # type: ignore[union-attr]
            return statuses == {"slow": "Converged", "motd": "Converged"}

        until(both, 60, "both workflows to converge", interval=0.3)
        yield base, process


@pytest.fixture
def daemon(tmp_path: Path, repo: Path) -> Iterator[str]:
    """The base URL of a daemon serving its API and page, once both workflows converged."""
    with converged(tmp_path, repo, "--api-docs") as (base, _process):
        yield base


@pytest.fixture
def polling_daemon(tmp_path: Path, repo: Path) -> Iterator[tuple[str, DaemonProcess]]:
    """The daemon fetching its repository every second, and its process."""
    with converged(tmp_path, repo, "--poll-interval", "1s") as running_daemon:
        yield running_daemon


def save_screenshot(page: object, tmp_path: Path, name: str) -> Path:
    """A full-page screenshot in ``tmp_path``, copied to ``test-output/``; its path is printed."""
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)  # type: ignore[attr-defined]
    out = REPO_ROOT / "test-output"
    out.mkdir(exist_ok=True)
    shutil.copy(shot, out / f"web-{name}")
    print(f"screenshot: {shot} (and {out / f'web-{name}'})")
    assert shot.stat().st_size > 10_000
    return shot


@pytest.fixture
def chromium() -> Iterator[object]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is not installed (Debian package chromium)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    with playwright_sync.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield browser
        finally:
            browser.close()


def watch_policy(page: object, origin: str) -> tuple[list[str], list[str]]:
    """Console messages reporting a Content-Security-Policy violation, and requests leaving
    ``origin``, as the page makes them (both lists fill in while the test goes on)."""
    violations: list[str] = []
    elsewhere: list[str] = []

    def on_console(message: object) -> None:
        text = str(message.text)  # type: ignore[attr-defined]
        if "Content Security Policy" in text:
            violations.append(text)

    def on_request(request: object) -> None:
        url = str(request.url)  # type: ignore[attr-defined]
        if not url.startswith((origin + "/", "data:")):
            elsewhere.append(url)

    page.on("console", on_console)  # type: ignore[attr-defined]
    page.on("request", on_request)  # type: ignore[attr-defined]
    return violations, elsewhere


def test_page_shows_workflows_diagram_and_sync_updates_live(
    daemon: str, chromium: object, tmp_path: Path
) -> None:
    page = chromium.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    violations, elsewhere = watch_policy(page, daemon)
    page.goto(daemon + "/")

    rows = page.locator("#workflows tbody tr")
    rows.first.wait_for()
    assert sorted(rows.all_inner_texts()) and {
        r.get_attribute("data-workflow") for r in rows.all()
    } == {"slow", "motd"}
    slow = page.locator('#workflows tr[data-workflow="slow"]')
    assert slow.locator("td.status").inner_text() == "Converged"
    last_run_before = slow.locator("td").nth(4).inner_text()

    slow.click()
    page.locator('#diagram g[data-state="work"]').wait_for()
    assert page.locator('#diagram g[data-state="done"]').count() == 1
    page.locator("#journal tbody tr").first.wait_for()  # the converging run's journal
    assert "run_finished" in page.locator("#journal").inner_text()

    page.evaluate("window.__sameDocument = 42")
    page.fill("#token", TOKEN)
    page.dispatch_event("#token", "change")
    slow.locator("button").click()

    page.wait_for_function(
        "() => document.querySelector('#workflows tr[data-workflow=\"slow\"] td.status')"
        ".innerText === 'Progressing'",
        timeout=20_000,
    )
    page.locator('#diagram g.current[data-state="work"]').wait_for(timeout=20_000)
    page.wait_for_function(
        "() => document.querySelector('#workflows tr[data-workflow=\"slow\"] td.status')"
        ".innerText === 'Converged'",
        timeout=30_000,
    )
    assert page.evaluate("window.__sameDocument") == 42  # updated live, never reloaded
    assert slow.locator("td").nth(4).inner_text() != last_run_before
    # the manual run says who asked for it (the token's name) beside its reason
    page.wait_for_function(
        "() => [...document.querySelectorAll('#runs tbody td')]"
        ".some((td) => td.innerText === 'manual, requested by default')",
        timeout=20_000,
    )

    save_screenshot(page, tmp_path, "page.png")

    assert CANARY not in page.content()
    # The daemon's Content-Security-Policy blocked nothing the page needs.
    assert violations == []
    assert elsewhere == []


def test_api_docs_render_from_the_daemons_own_files_under_its_policy(
    daemon: str, chromium: object
) -> None:
    page = chromium.new_page()  # type: ignore[attr-defined]
    violations, elsewhere = watch_policy(page, daemon)
    response = page.goto(daemon + "/docs")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    page.locator("#operations-workflows-list_workflows_api_v1_workflows_get").wait_for(
        timeout=20_000
    )
    assert page.locator(".opblock").count() >= 10
    assert violations == []
    assert elsewhere == []


def test_sync_without_the_token_is_refused_on_the_page(daemon: str, chromium: object) -> None:
    page = chromium.new_page()  # type: ignore[attr-defined]
    page.goto(daemon + "/")
    motd = page.locator('#workflows tr[data-workflow="motd"]')
    motd.wait_for()
    motd.locator("button").click()
    page.wait_for_function(
        "() => document.querySelector('#notice').innerText.includes('sync motd')",
        timeout=10_000,
    )
    assert "token" in page.locator("#notice").inner_text().lower()


def test_page_shows_the_failing_repository_then_the_unreachable_daemon_with_data_as_of(
    polling_daemon: tuple[str, DaemonProcess], chromium: object, tmp_path: Path
) -> None:
    base, process = polling_daemon
    page = chromium.new_page(viewport={"width": 1280, "height": 700})  # type: ignore[attr-defined]
    page.goto(base + "/")
    motd = page.locator('#workflows tr[data-workflow="motd"]')
    motd.wait_for()
    source_banner, unreachable = page.locator("#source-banner"), page.locator("#unreachable")
    assert source_banner.is_hidden() and unreachable.is_hidden()
    assert page.locator("#ready").inner_text() == "ready"

    # The repository goes away: a banner with git's message while fetches fail, and once they
    # have failed for 3 polls the daemon is not ready. The rows stay: they are still current.
    repo = tmp_path / "repo"
    os.replace(repo, tmp_path / "repo-moved-away")
    source_banner.wait_for(state="visible", timeout=20_000)
    text = source_banner.inner_text()
    assert text.startswith("The repository cannot be fetched (last successful fetch ")
    assert f"git {repo} branch main: fetch failed" in text  # git's own message, as logged
    page.wait_for_function(
        "() => document.querySelector('#ready').innerText === 'not ready'", timeout=20_000
    )
    assert "not been fetched since" in str(page.locator("#ready").get_attribute("title"))
    assert unreachable.is_hidden()
    save_screenshot(page, tmp_path, "page-source-failing.png")

    # Back: the banner goes by itself.
    os.replace(tmp_path / "repo-moved-away", repo)
    source_banner.wait_for(state="hidden", timeout=20_000)
    page.wait_for_function(
        "() => document.querySelector('#ready').innerText === 'ready'", timeout=20_000
    )

    # The daemon dies: the rows stay, dimmed, under "daemon unreachable, data as of T".
    process.kill()
    unreachable.wait_for(state="visible", timeout=20_000)
    assert unreachable.inner_text().startswith("daemon unreachable, data as of ")
    assert "never" not in unreachable.inner_text()
    assert page.locator("#ready").inner_text() == "unreachable"
    assert page.locator("main.stale").count() == 1
    assert motd.locator("td.status").inner_text() == "Converged"  # the last data, kept
    save_screenshot(page, tmp_path, "page-daemon-unreachable.png")


def test_page_says_an_unsigned_head_commit_is_not_applied_until_a_signed_one_follows(
    chromium: object, tmp_path: Path, repo: Path
) -> None:
    ops = SigningKey(tmp_path / "keys", "ops")
    signers = allowed_signers(tmp_path / "allowed_signers", ops)
    put(repo, file_workflow("motd", "motd.txt", "signed\n", keep=True))
    signed_commit(repo, ops, "signed")
    verify = ("--verify-signatures", "--allowed-signers", str(signers), "--poll-interval", "1s")
    with serving(tmp_path, repo, *verify) as (base, _process):
        page = chromium.new_page(viewport={"width": 1280, "height": 700})  # type: ignore[attr-defined]
        page.goto(base + "/")
        page.locator('#workflows tr[data-workflow="motd"]').wait_for()
        banner = page.locator("#source-banner")
        assert banner.is_hidden()

        put(repo, file_workflow("motd", "motd.txt", "unsigned\n", keep=True))
        unsigned = commit(repo, "unsigned")
        banner.wait_for(state="visible", timeout=20_000)
        text = banner.inner_text()
        assert text.startswith(
            "The head commit of the repository is not signed by an allowed key and is not "
            "applied (last successful fetch "
        )
        assert f"commit {unsigned[:12]} refused: it is not signed" in text
        save_screenshot(page, tmp_path, "page-signature-refused.png")

        signed_commit(repo, ops, "signed on top")
        banner.wait_for(state="hidden", timeout=20_000)


def restart_failing_workflow(path: Path) -> dict[str, object]:
    """A workflow that writes its config (which its probe then finds in place) and fails to
    restart the service afterwards: the probe says in sync, the run failed."""
    document = file_workflow("web", path, "listen 80\n", keep=True)
    states = document["spec"]["states"]
    states["write"]["next"] = "restart"
    states["restart"] = {
        "action": {
            "plugin": "shell.run",
            "with": {"argv": ["sh", "-c", "echo 'Job for web.service failed.' >&2; exit 1"]},
        },
        "next": "done",
        "onError": "failed",
    }
    return document


def test_page_shows_a_failed_run_beside_a_probe_in_sync(
    tmp_path: Path, repo: Path, chromium: object
) -> None:
    put(repo, restart_failing_workflow(tmp_path / "web.conf"))
    commit(repo, "web")
    with serving(tmp_path, repo) as (base, process):

        def failed_in_sync() -> bool:
            process.alive()
            try:
                web = get_json(f"{base}/api/v1/workflows/web")
            except OSError:
                return False
            return (web["status"], web["sync"]) == ("Degraded", "Synced")

        until(failed_in_sync, 60, "web to be Degraded while its probe says Synced", interval=0.3)
        page = chromium.new_page(viewport={"width": 1280, "height": 700})  # type: ignore[attr-defined]
        page.goto(base + "/")
        web = page.locator('#workflows tr[data-workflow="web"]')
        web.wait_for()
        assert web.locator("td.status").inner_text() == "Degraded"
        assert web.locator("td.sync").inner_text() == "Synced"
        assert web.locator("td").nth(5).inner_text() == "RunFailed"
        web.click()
        message = page.locator("#detail-message")
        page.wait_for_function(
            "() => document.querySelector('#detail-message').innerText.startsWith('RunFailed')",
            timeout=10_000,
        )
        assert "Job for web.service failed." in message.inner_text()  # the command's own words
        page.locator('#diagram g[data-state="restart"]').wait_for()
        save_screenshot(page, tmp_path, "page-run-failed-in-sync.png")


def test_the_source_banner_gives_gits_message_without_the_urls_password(
    tmp_path: Path, chromium: object
) -> None:
    password = "s3cret-Pa55word-never-shown"
    # Not "reconciler" as the user: the daemon masks the URL's user name in its log as well,
    # "reconciler started" included.
    url = f"http://deploy-bot:{password}@127.0.0.1:{free_port()}/ops/maintenance.git"
    with serving(tmp_path, url, "--branch", "main") as (base, process):
        page = chromium.new_page()  # type: ignore[attr-defined]

        def answers() -> bool:
            process.alive()
            try:
                get_json(f"{base}/healthz")
            except OSError:
                return False
            return True

        until(answers, 60, "the daemon to answer", interval=0.1)
        page.goto(base + "/")
        banner = page.locator("#source-banner")
        banner.wait_for(state="visible", timeout=30_000)
        text = banner.inner_text()
        assert "no successful fetch since the daemon started" in text
        assert "http://***@127.0.0.1:" in text  # git's message, about this repository
        assert "Failed to connect" in text or "Couldn't connect" in text
        assert page.locator("#ready").inner_text() == "not ready"
        save_screenshot(page, tmp_path, "page-source-never-fetched.png")
        assert password not in page.content()
        assert password not in process.log_text()


def test_a_run_waiting_for_approval_is_approved_on_the_page_with_a_comment(
    tmp_path: Path, repo: Path, chromium: object
) -> None:
    out = tmp_path / "gate.txt"
    put(repo, gated_workflow("gate", out, "opened", message="Open the gate at ${{ inputs.path }}?"))
    commit(repo, "a gated workflow")
    with serving(tmp_path, repo) as (base, process):
        page = chromium.new_page(viewport={"width": 1280, "height": 800})  # type: ignore[attr-defined]
        page.goto(base + "/")
        card = page.locator("article.approval")
        card.wait_for(timeout=30_000)
        assert f"Open the gate at {out}?" in card.inner_text()
        assert "may decide: any operator" in card.inner_text()
        save_screenshot(page, tmp_path, "page-approval.png")

        page.fill("#token", TOKEN)
        page.dispatch_event("#token", "change")
        card.locator("textarea").fill("looked at the diff")
        card.locator("button.approve").click()
        page.wait_for_function(
            "() => document.querySelector('#approval-box').hidden", timeout=20_000
        )
        until(lambda: process.alive() and out.exists(), 30, "the approved run to write its file")
        page.locator('#workflows tr[data-workflow="gate"]').click()
        page.wait_for_function(
            "() => document.querySelector('#journal-title').innerText"
            ".includes('approved by default')",
            timeout=20_000,
        )
        assert "looked at the diff" in page.locator("#journal").inner_text()


def test_a_daemon_whose_reads_need_the_token_shows_its_workflows_once_it_is_typed(
    tmp_path: Path, repo: Path, chromium: object
) -> None:
    put(repo, file_workflow("motd", "motd.txt", "hello\n", keep=True))
    commit(repo, "one workflow")
    with serving(tmp_path, repo, "--read-auth", "token") as (base, _process):
        page = chromium.new_page(viewport={"width": 1280, "height": 700})  # type: ignore[attr-defined]
        page.goto(base + "/")
        banner = page.locator("#unreachable")
        banner.wait_for(state="visible", timeout=20_000)
        assert "needs an API token" in banner.inner_text()
        assert page.locator("#workflows tbody tr").count() == 0

        page.fill("#token", TOKEN)
        page.dispatch_event("#token", "change")
        page.locator('#workflows tr[data-workflow="motd"]').wait_for(timeout=20_000)
        banner.wait_for(state="hidden", timeout=20_000)
        page.reload()  # kept for the tab's session
        page.locator('#workflows tr[data-workflow="motd"]').wait_for(timeout=20_000)
        assert page.input_value("#token") == TOKEN


def test_page_shows_the_change_window_that_blocks_a_workflow(
    tmp_path: Path, repo: Path, chromium: object
) -> None:
    frozen = file_workflow("frozen", "frozen.txt", "x\n", keep=True)
    frozen["spec"]["windows"] = [
        {"kind": "deny", "schedule": "* * * * *", "duration": "1h", "description": "freeze"}
    ]
    put(repo, frozen)
    commit(repo, "a workflow under a freeze")
    with serving(tmp_path, repo) as (base, process):

        def blocked() -> bool:
            process.alive()
            try:
                listed = get_json(f"{base}/api/v1/workflows")["workflows"]
            except OSError:
                return False
            return [w["reason"] for w in listed] == ["WindowClosed"]  # type: ignore[union-attr]

        until(blocked, 60, "frozen to wait for its window", interval=0.3)
        page = chromium.new_page(viewport={"width": 1280, "height": 700})  # type: ignore[attr-defined]
        page.goto(base + "/")
        row = page.locator('#workflows tr[data-workflow="frozen"]')
        row.wait_for()
        assert row.locator("td.window").inner_text() == "blocked"  # never closes: no "until"
        assert "freeze" in (row.locator("td.window").get_attribute("title") or "")
        row.click()
        page.locator("#detail-window").wait_for()
        assert "deny window spec.windows[0]" in page.locator("#detail-window").inner_text()
        save_screenshot(page, tmp_path, "window.png")


def test_page_shows_the_inputs_a_run_was_started_with_and_who_asked(
    tmp_path: Path, repo: Path, chromium: object
) -> None:
    greet = file_workflow("greet", "greet.txt", "unused")
    greet["spec"]["inputs"] = {"path": "greet.txt"}
    greet["spec"]["parameters"] = {"greeting": {"type": "string", "default": "hello"}}
    greet["spec"]["states"]["write"]["action"]["with"]["content"] = "${{ inputs.greeting }}"
    put(repo, greet)
    commit(repo, "greet")
    with serving(tmp_path, repo) as (base, process):

        def first_run_done() -> bool:
            process.alive()
            try:
                runs = get_json(f"{base}/api/v1/runs?workflow=greet")["runs"]
            except OSError:
                return False
            return any(r["status"] == "succeeded" for r in runs)  # type: ignore[attr-defined,index]

        until(first_run_done, 60, "greet's first run", interval=0.3)
        request = urllib.request.Request(
            f"{base}/api/v1/workflows/greet/runs",
            data=json.dumps({"inputs": {"greeting": "hi there"}}).encode(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 202
        page = chromium.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
        page.goto(base + "/")
        page.locator('#workflows tr[data-workflow="greet"]').click()
        why = 'manual, requested by default, inputs greeting="hi there"'
        page.wait_for_function(
            "(why) => [...document.querySelectorAll('#runs tbody td')]"
            ".some((td) => td.innerText === why)",
            arg=why,
            timeout=30_000,
        )
        page.locator("#runs tbody tr", has_text="hi there").click()
        page.wait_for_function(
            "(why) => document.querySelector('#journal-title').innerText.includes(why)",
            arg=why,
            timeout=20_000,
        )
        save_screenshot(page, tmp_path, "page-run-inputs.png")
