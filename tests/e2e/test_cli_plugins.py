"""``reconciler plugins`` as users run it: the installed console script in a subprocess.

A third-party plugin is "installed" the way pip would leave it: a module and a ``*.dist-info``
directory with an ``entry_points.txt`` on ``PYTHONPATH``, so discovery goes through the real
``importlib.metadata`` entry-point machinery.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

BUILTINS = {
    "file.read": True,
    "file.write": False,
    "http.check": True,
    "http.request": False,
    "shell.run": False,
}

ACME_MODULE = '''
"""An example third-party plugin package."""

from collections.abc import Callable

from pydantic import Field

from reconciler.plugin import ActionContext, Plugin, Request, Response


class HelloRequest(Request):
    name: str = Field(description="Who to greet.")


class HelloResponse(Response):
    greeting: str = Field(description="The greeting.")


class Hello(Plugin[HelloRequest, HelloResponse]):
    """Greet someone (third-party example)."""

    check = True
    Request = HelloRequest
    Response = HelloResponse

    async def run(self, request: HelloRequest, context: ActionContext) -> HelloResponse:
        return HelloResponse(greeting=f"hello {request.name}")


class WeirdRequest(Request):
    callback: Callable[[], None] = Field(description="Not expressible in JSON Schema.")


class Weird(Plugin[WeirdRequest, Response]):
    """A plugin whose request has no JSON Schema."""

    Request = WeirdRequest
    Response = Response

    async def run(self, request: WeirdRequest, context: ActionContext) -> Response:
        return Response()
'''


def reconciler_exe() -> str:
    exe = shutil.which("reconciler", path=str(Path(sys.executable).parent))
    assert exe, "the reconciler console script is not installed next to this Python"
    return exe


def run_cli(*args: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [reconciler_exe(), "plugins", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def acme_site(tmp_path: Path) -> Path:
    """A directory holding an installed third-party plugin and a broken one."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "acme_reconciler.py").write_text(ACME_MODULE)
    dist = site / "acme_reconciler-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-reconciler\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent(
            """\
            [reconciler.plugins]
            acme.hello = acme_reconciler:Hello
            acme.broken = acme_missing_module:Nope
            acme.weird = acme_reconciler:Weird
            """
        )
    )
    return site


def test_json_listing_has_every_builtin_plugin_with_its_check_flag() -> None:
    payload = as_json(run_cli("--output", "json"))
    listed = {p["name"]: p for p in payload["plugins"]}
    for name, is_check in BUILTINS.items():
        assert name in listed
        assert listed[name]["check"] is is_check
        assert listed[name]["description"]
    assert listed["http.request"]["retry"]["attempts"] == 3
    assert "CommandFailed" in listed["shell.run"]["errors"]


def test_text_listing_is_a_table_of_name_check_and_description() -> None:
    result = run_cli()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    read_line = next(line for line in lines if "file.read" in line)
    assert "yes" in read_line
    assert "Read a text file" in read_line
    write_line = next(line for line in lines if "file.write" in line)
    assert "yes" not in write_line


def test_named_plugin_shows_request_and_response_json_schemas() -> None:
    info = as_json(run_cli("file.read", "-o", "json"))
    assert info["name"] == "file.read"
    assert info["check"] is True
    assert set(info["request"]["properties"]) == {"path", "encoding", "missingOk"}
    assert info["request"]["additionalProperties"] is False
    assert info["request"]["properties"]["path"]["description"]
    assert {"exists", "content", "sha256", "size", "changed"} <= set(info["response"]["properties"])
    assert "NotFound" in info["errors"]


def test_named_plugin_text_output_includes_the_schema() -> None:
    result = run_cli("shell.run")
    assert result.returncode == 0, result.stderr
    assert "okExitCodes" in result.stdout
    assert "exitCode" in result.stdout
    assert "CommandFailed" in result.stdout


def test_unknown_plugin_exits_2_with_one_clear_line() -> None:
    result = run_cli("file.reed")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().count("\n") == 0
    assert "unknown plugin 'file.reed'" in result.stderr
    assert "file.read" in result.stderr


def test_third_party_plugin_is_discovered_through_the_entry_point_group(
    acme_site: Path,
) -> None:
    payload = as_json(run_cli("-o", "json", pythonpath=acme_site))
    listed = {p["name"]: p for p in payload["plugins"]}
    assert listed["acme.hello"]["description"] == "Greet someone (third-party example)."
    assert listed["acme.hello"]["check"] is True
    assert "acme.broken" not in listed
    assert "ModuleNotFoundError" in payload["loadErrors"]["acme.broken"]

    info = as_json(run_cli("acme.hello", "-o", "json", pythonpath=acme_site))
    assert info["request"]["properties"]["name"]["description"] == "Who to greet."


def test_plugin_that_failed_to_load_is_reported_not_hidden(acme_site: Path) -> None:
    listing = run_cli(pythonpath=acme_site)
    assert listing.returncode == 0
    assert "acme.hello" in listing.stdout
    assert "'acme.broken' failed to load" in listing.stderr

    shown = run_cli("acme.broken", pythonpath=acme_site)
    assert shown.returncode == 2
    assert "failed to load" in shown.stderr


def test_plugin_without_a_json_schema_is_shown_with_the_reason(acme_site: Path) -> None:
    info = as_json(run_cli("acme.weird", "-o", "json", pythonpath=acme_site))
    assert "no JSON Schema" in info["request"]["error"]
    assert info["response"]["properties"]["changed"]["type"] == "boolean"


def test_a_name_two_distributions_register_is_refused_naming_both(
    acme_site: Path, tmp_path: Path
) -> None:
    rival = acme_site / "rival_reconciler-2.0.dist-info"
    rival.mkdir()
    (rival / "METADATA").write_text("Metadata-Version: 2.1\nName: rival-reconciler\nVersion: 2.0\n")
    (rival / "entry_points.txt").write_text(
        "[reconciler.plugins]\nacme.hello = acme_reconciler:Weird\n"
    )
    payload = as_json(run_cli("--output", "json", pythonpath=acme_site))
    assert "acme.hello" not in {p["name"] for p in payload["plugins"]}
    assert payload["loadErrors"]["acme.hello"] == (
        "registered by 2 installed distributions, acme-reconciler (acme_reconciler:Hello) and "
        "rival-reconciler (acme_reconciler:Weird): uninstall one, or rename its entry point"
    )
    assert "acme.weird" in {p["name"] for p in payload["plugins"]}  # the rest still loads

    workflow = tmp_path / "hello.yaml"
    workflow.write_text(
        textwrap.dedent(
            """\
            apiVersion: reconciler/v1
            kind: Workflow
            metadata: {name: hello}
            spec:
              start: greet
              states:
                greet:
                  action: {plugin: acme.hello, with: {name: world}}
                  next: done
                  onError: done
                done: {end: success}
            """
        )
    )
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1", PYTHONPATH=str(acme_site))
    validated = subprocess.run(
        [reconciler_exe(), "validate", str(workflow)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert validated.returncode == 1
    assert "unknown plugin 'acme.hello': it failed to load (registered by 2" in validated.stdout
