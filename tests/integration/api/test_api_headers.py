"""Every answer of the daemon carries the security headers, and the API documentation never
loads anything from outside the daemon: the page keeps the API token on this origin, so a
script from a CDN, an inline script or a frame around the page could take it.

The page's and the documentation's behaviour under this policy in a real browser is checked by
``tests/e2e/test_web_page.py``.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from reconciler.api.headers import CONTENT_SECURITY_POLICY
from tests.integration.api.conftest import Daemon, start_daemon

pytestmark = pytest.mark.timeout(60)

EXPECTED = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


class _References(HTMLParser):
    """The URLs an HTML page loads (scripts, stylesheets, icons) and its inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script":
            self._in_script = True
            if values.get("src"):
                self.urls.append(str(values["src"]))
        elif tag == "link" and values.get("href"):
            self.urls.append(str(values["href"]))
        if any(name.startswith("on") for name in values) or "style" in values:
            self.inline_scripts += 1

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False


def references(html: str) -> _References:
    parser = _References()
    parser.feed(html)
    return parser


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/static/app.js"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/api/v1/workflows"),
        ("GET", "/api/v1/workflows/no-such-workflow"),
        ("POST", "/api/v1/workflows/motd/sync"),
        ("POST", "/hooks/generic"),
        ("GET", "/no/such/endpoint"),
    ],
)
async def test_every_answer_carries_the_security_headers(
    daemon: Daemon, method: str, path: str
) -> None:
    response = await daemon.client.request(method, path)
    assert {name: response.headers.get(name) for name in EXPECTED} == EXPECTED


def test_the_policy_allows_no_inline_script_no_other_origin_and_no_framing() -> None:
    directives = dict(part.partition(" ")[::2] for part in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    assert not re.search(r"https?:|\*", CONTENT_SECURITY_POLICY)


async def test_the_page_needs_no_inline_script_or_style(daemon: Daemon) -> None:
    page = references((await daemon.client.get("/")).text)
    assert page.inline_scripts == 0
    assert page.urls and all(url.startswith("/static/") for url in page.urls)
    for url in page.urls:
        assert (await daemon.client.get(url)).status_code == 200, url


async def test_api_docs_are_off_by_default_and_fastapis_cdn_pages_are_gone(
    daemon: Daemon,
) -> None:
    assert not daemon.controller.settings.api_docs
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect", "/docs/init.js"):
        assert (await daemon.client.get(path)).status_code == 404, path
    assert (await daemon.client.get("/openapi.json")).json()["info"]["title"] == "reconciler"


async def test_api_docs_when_enabled_load_only_the_daemons_own_files(tmp_path: Path) -> None:
    async for daemon in start_daemon(tmp_path, api_docs=True):
        response = await daemon.client.get("/docs")
        assert response.status_code == 200
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        docs = references(response.text)
        assert docs.inline_scripts == 0
        assert "/docs/assets/swagger-ui-bundle.js" in docs.urls
        assert all(url.startswith("/docs/") for url in docs.urls), docs.urls
        for url in docs.urls:
            asset = await daemon.client.get(url)
            assert asset.status_code == 200, url
            assert asset.headers["x-content-type-options"] == "nosniff"
        script = (await daemon.client.get("/docs/init.js")).text
        assert '"/openapi.json"' in script
        assert not re.search(r"https?://", script)
