"""``GET /api/v1/workflows/{name}/graph?format=svg``: Graphviz's drawing of the state diagram,
with the run's states highlighted; a named 503 when ``dot`` is not on the daemon's ``PATH``."""

from __future__ import annotations

import shutil
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.integration.api.conftest import Daemon

pytestmark = pytest.mark.timeout(60)

SVG = "{http://www.w3.org/2000/svg}"

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz (dot) not installed")


@needs_dot
async def test_svg_is_dots_drawing_of_every_state_with_the_running_one_highlighted(
    daemon: Daemon,
) -> None:
    await daemon.running_run("slow")
    response = await daemon.client.get("/api/v1/workflows/slow/graph?format=svg")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("image/svg+xml")
    root = ElementTree.fromstring(response.content)
    assert root.tag == f"{SVG}svg"
    assert not list(root.iter(f"{SVG}script"))
    nodes = {g.findtext(f"{SVG}title"): g for g in root.iter(f"{SVG}g") if g.get("class") == "node"}
    assert {"wait", "done", "failed"} <= set(nodes)
    fills = {name: {p.get("fill") for p in g.iter()} for name, g in nodes.items()}
    assert "#fff59d" in fills["wait"]  # the state the run is in: filled yellow
    assert "#fff59d" not in fills["done"]


@needs_dot
async def test_without_dot_the_svg_is_a_named_503(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a host where Graphviz is not installed
    response = await daemon.client.get("/api/v1/workflows/motd/graph?format=svg")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "graphviz_unavailable"
    assert "not installed" in response.json()["error"]["message"]
