"""The web page in headless Chromium against a real daemon process: see, open, sync, live.

Chromium is Debian's (``/usr/bin/chromium``, installed by ``.ci/run``) driven by Playwright; the
daemon is a real ``reconciler run`` on a git repository in ``tmp_path``. A screenshot of the page
is saved in the test's output directory (``tmp_path``) and copied to ``test-output/``.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.support.daemon import running
from tests.support.net import free_port
from tests.support.repos import commit
from tests.support.waiting import until
from tests.support.workflows import file_workflow, put

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


@pytest.fixture
def daemon(tmp_path: Path, repo: Path) -> Iterator[str]:
    """The base URL of a daemon serving its API and page, once both workflows converged."""
    (repo / "slow.yaml").write_text(SLOW)
    put(repo, file_workflow("motd", "motd.txt", "hello\n", keep=True))
    commit(repo, "two workflows")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running(
        repo,
        tmp_path / "data",
        "--listen",
        f"127.0.0.1:{port}",
        "--api-docs",
        cwd=tmp_path,
        log=tmp_path / "daemon.log",
        env={"RECONCILER_API_TOKEN": TOKEN, "RECONCILER_SECRET_PAGE_CANARY": CANARY},
    ) as process:

        def converged() -> bool:
            process.alive()
            try:
                listed = get_json(f"{base}/api/v1/workflows")["workflows"]
            except OSError:
                return False
            statuses = {w["name"]: w["status"] for w in listed}  # type: ignore[union-attr]
            return statuses == {"slow": "Converged", "motd": "Converged"}

        until(converged, 60, "both workflows to converge", interval=0.3)
        yield base


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

    shot = tmp_path / "page.png"
    page.screenshot(path=str(shot), full_page=True)
    out = REPO_ROOT / "test-output"
    out.mkdir(exist_ok=True)
    shutil.copy(shot, out / "web-page.png")
    assert shot.stat().st_size > 10_000

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
