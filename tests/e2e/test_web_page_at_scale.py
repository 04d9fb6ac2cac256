"""The web page at 1,000 workflows in headless Chromium against a real daemon process: counts
by status, a filter on name and label, a status filter, sortable columns, the view kept in the
URL hash, the detail in view beside the list with Graphviz's drawing of its diagram, rows
reached and opened with the keyboard, and
refreshes that download the unchanged list again only as a ``304 Not Modified``.

The daemon is a real ``reconciler run`` on a git repository in ``tmp_path`` holding 1,000 small
``file_workflow``s (interval 1h, a label each) that converge before the page is opened.
Screenshots are saved by :func:`save_screenshot` (``tmp_path`` and ``test-output/``). A last
test runs a small daemon whose ``PATH`` has no Graphviz: the page draws the diagram itself.
"""

from __future__ import annotations

import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_web_page import chromium, get_json, save_screenshot, serving
from tests.support.daemon import running
from tests.support.net import free_port
from tests.support.repos import commit, init_repo
from tests.support.waiting import until
from tests.support.workflows import file_workflow, put

__all__ = ["chromium"]

pytestmark = pytest.mark.timeout(300)

COUNT = 1000
TEAMS = ("ops", "web", "data", "infra")


def team_of(index: int) -> str:
    return TEAMS[index % len(TEAMS)]


@pytest.fixture(scope="module")
def thousand(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a daemon whose 1,000 workflows all converged (shared by this module's
    tests, which only read)."""
    tmp_path = tmp_path_factory.mktemp("thousand")
    repo = init_repo(tmp_path / "repo")
    out = tmp_path / "out"
    out.mkdir()
    for index in range(COUNT):
        put(
            repo,
            file_workflow(
                f"wf-{index:04d}",
                out / f"{index}.txt",
                f"{index}\n",
                keep=True,
                labels={"team": team_of(index)},
            ),
        )
    commit(repo, "a thousand workflows")
    with serving(tmp_path, repo) as (base, process):

        def all_converged() -> bool:
            process.alive()
            try:
                listed = get_json(f"{base}/api/v1/workflows")["workflows"]
            except OSError:
                return False
            statuses = [w["status"] for w in listed]  # type: ignore[union-attr]
            return len(statuses) == COUNT and set(statuses) == {"Converged"}

        until(all_converged, 240, "1,000 workflows to converge", interval=1.0)
        yield base


def shown_names(page: object) -> list[str]:
    return page.evaluate(  # type: ignore[attr-defined,no-any-return]
        "() => [...document.querySelectorAll('#workflows tbody tr')].map((r) => r.dataset.workflow)"
    )


def test_thousand_workflows_are_counted_filtered_sorted_and_opened_by_keyboard(
    thousand: str, chromium: object, tmp_path: Path
) -> None:
    page = chromium.new_page(viewport={"width": 1400, "height": 900})  # type: ignore[attr-defined]
    page.goto(thousand + "/")
    page.wait_for_function(
        f"() => document.querySelectorAll('#workflows tbody tr').length === {COUNT}"
    )

    # the summary counts by status; all converged
    assert (
        page.locator('#summary button[data-status="Converged"]').inner_text()
        == f"Converged {COUNT}"
    )
    assert page.locator('#summary button[data-status=""]').inner_text() == f"all {COUNT}"

    # a label filter narrows to that team, a name filter narrows further
    page.fill("#filter", "team=ops")
    page.wait_for_function(
        f"() => document.querySelectorAll('#workflows tbody tr').length === {COUNT // 4}"
    )
    assert all(int(name[3:]) % 4 == 0 for name in shown_names(page))
    page.fill("#filter", "team=ops wf-09")
    names = shown_names(page)
    assert names == [f"wf-{i:04d}" for i in range(900, 1000) if i % 4 == 0]
    assert "q=team%3Dops+wf-09" in page.evaluate("location.hash")

    # a click on the name column sorts descending; the hash keeps it and a link reproduces it
    page.locator('#workflows th[data-sort="name"] button').click()
    assert shown_names(page) == sorted(names, reverse=True)
    link = page.evaluate("location.href")
    assert "sort=name" not in link and "dir=desc" in link

    other = chromium.new_page(viewport={"width": 1400, "height": 900})  # type: ignore[attr-defined]
    other.goto(link)
    other.wait_for_function(
        f"() => document.querySelectorAll('#workflows tbody tr').length === {len(names)}"
    )
    assert shown_names(other) == sorted(names, reverse=True)
    assert other.locator("#filter").input_value() == "team=ops wf-09"

    # the status filter: nothing is Degraded, so no row; the summary's "all" clears it
    page.select_option("#status-filter", "Degraded")
    page.wait_for_function("() => document.querySelectorAll('#workflows tbody tr').length === 0")
    assert "status=Degraded" in page.evaluate("location.hash")
    page.locator('#summary button[data-status=""]').click()
    page.fill("#filter", "")
    page.wait_for_function(
        f"() => document.querySelectorAll('#workflows tbody tr').length === {COUNT}"
    )

    # keyboard: focus a row, move down with the arrow, Enter opens that workflow's detail
    page.locator('#workflows tr[data-workflow="wf-0101"]').focus()
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.dataset.workflow") == "wf-0100"
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.dataset.workflow") == "wf-0099"
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => document.querySelector('#detail-name').innerText.startsWith('wf-0099')"
    )
    # the detail is in view beside the list, without scrolling the page down to it
    box = page.locator("#detail-name").bounding_box()
    assert box is not None and 0 <= box["y"] < 900
    assert page.evaluate("window.scrollY") < 900

    # the diagram is Graphviz's layout, its states marked, no two texts overlapping
    page.locator('#diagram svg.graphviz g.visited[data-state="write"]').wait_for()
    boxes = page.evaluate(
        "() => [...document.querySelectorAll('#diagram svg text')].map((t) => {"
        " const r = t.getBoundingClientRect(); return [t.textContent, r.left, r.top, r.right, r.bottom]; })"
    )
    assert {"write", "done", "failed"} <= {b[0] for b in boxes}
    # The lines of one state's label are stacked a line apart; their boxes include the font's
    # ascent and descent, so they may touch by a few pixels without any glyph overlapping.
    slack = 3
    for i, (text_a, *a) in enumerate(boxes):
        for text_b, *b in boxes[i + 1 :]:
            apart = a[2] <= b[0] or b[2] <= a[0] or a[3] - slack <= b[1] or b[3] - slack <= a[1]
            assert apart, f"{text_a!r} overlaps {text_b!r}"
    save_screenshot(page, tmp_path, "page-1000.png")


REFRESHES = 5


def test_refreshes_of_an_unchanged_list_of_a_thousand_cost_headers_not_the_list(
    thousand: str, chromium: object
) -> None:
    full = len(urllib.request.urlopen(f"{thousand}/api/v1/workflows", timeout=10).read())
    assert full > 200_000  # the whole list, what every refresh downloaded before

    page = chromium.new_page(viewport={"width": 1400, "height": 900})  # type: ignore[attr-defined]
    lists: list[object] = []

    def on_response(response: object) -> None:
        if str(response.url).endswith("/api/v1/workflows"):  # type: ignore[attr-defined]
            lists.append(response)

    # Chromium reports a 304 without a body as an aborted request (no "requestfinished", no
    # sizes): the bytes are counted from each answer's headers and its Content-Length.
    page.on("response", on_response)
    page.goto(thousand + "/")

    def refreshed() -> bool:
        page.wait_for_timeout(200)  # type: ignore[attr-defined]  # lets Playwright deliver events
        return len(lists) >= 1 + REFRESHES

    until(refreshed, 60, f"{REFRESHES} refreshes of the list (2 s apart)")

    statuses = [r.status for r in lists]  # type: ignore[attr-defined]
    headers = [r.headers for r in lists]  # type: ignore[attr-defined]
    body_bytes = sum(int(h.get("content-length", "0")) for h in headers)
    total = body_bytes + sum(len(k) + len(v) + 4 for h in headers for k, v in h.items())
    print(
        f"{len(lists)} list requests: {total} bytes "
        f"(without conditional requests: {full * len(lists)} bytes)"
    )
    assert statuses[0] == 200 and set(statuses[1:]) == {304}
    # one full list, then only headers: far below one full list per refresh
    assert body_bytes == full
    assert total < full + len(lists) * 2_000
    assert page.locator("#unreachable").is_hidden()  # type: ignore[attr-defined]
    assert page.locator("#workflows tbody tr").count() == COUNT  # type: ignore[attr-defined]


def test_at_390_px_the_page_fits_the_screen_and_the_table_scrolls_in_its_box(
    thousand: str, chromium: object, tmp_path: Path
) -> None:
    page = chromium.new_page(viewport={"width": 390, "height": 844})  # type: ignore[attr-defined]
    failed: list[str] = []
    page.on(  # type: ignore[attr-defined]
        "response", lambda r: failed.append(r.url) if r.status >= 400 else None
    )
    page.goto(thousand + "/#q=wf-09")
    page.wait_for_function("() => document.querySelectorAll('#workflows tbody tr').length === 100")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    box = page.locator("#list .scroll")
    assert box.evaluate("(el) => el.scrollWidth > el.clientWidth")  # the table scrolls inside

    # below the list on a small screen, the detail is scrolled into view when a row opens
    page.locator('#workflows tr[data-workflow="wf-0950"]').focus()
    page.keyboard.press(" ")
    page.wait_for_function(
        "() => document.querySelector('#detail-name').innerText.startsWith('wf-0950')"
    )
    page.wait_for_function(
        "() => { const r = document.querySelector('#detail').getBoundingClientRect();"
        " return r.top < innerHeight && r.bottom > 0; }"
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # the detail's tables scroll in their own boxes and stay tables for screen readers
    assert (
        page.evaluate(
            "['runs', 'journal', 'diff'].map((id) => [getComputedStyle(document.getElementById(id))"
            ".display, document.getElementById(id).parentElement.className])"
        )
        == [["table", "scroll"]] * 3
    )
    # the favicon is the daemon's own SVG, and nothing the page asked for was missing
    icon = page.evaluate("document.querySelector('link[rel=icon]').href")
    assert icon == f"{thousand}/static/favicon.svg"
    assert page.request.get(icon).headers["content-type"].startswith("image/svg+xml")
    assert failed == []
    save_screenshot(page, tmp_path, "page-390px.png")


def test_without_graphviz_on_the_daemons_host_the_page_draws_the_diagram_itself(
    tmp_path: Path, repo: Path, chromium: object
) -> None:
    # a PATH holding git and nothing else: no dot
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    git = shutil.which("git")
    assert git is not None
    (bin_dir / "git").symlink_to(git)
    put(repo, file_workflow("motd", tmp_path / "motd.txt", "hello\n", keep=True))
    commit(repo, "one workflow")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running(
        repo,
        tmp_path / "data",
        "--listen",
        f"127.0.0.1:{port}",
        cwd=tmp_path,
        log=tmp_path / "daemon.log",
        env={"PATH": str(bin_dir)},
    ) as process:

        def converged() -> bool:
            process.alive()
            try:
                listed = get_json(f"{base}/api/v1/workflows")["workflows"]
            except OSError:
                return False
            return [w["status"] for w in listed] == ["Converged"]  # type: ignore[union-attr]

        until(converged, 60, "motd to converge", interval=0.3)
        page = chromium.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
        page.goto(base + "/#wf=motd")
        page.locator('#diagram svg:not(.graphviz) g[data-state="write"]').wait_for()
        assert page.locator("#diagram svg.graphviz").count() == 0
        assert page.locator("#unreachable").is_hidden()
