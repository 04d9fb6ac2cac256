"""A third-party plugin package (examples/third-party-plugin) works with no change to the core.

The package is installed by pip, as a user would, into a temporary ``--target`` directory put on
``PYTHONPATH`` (the project's virtualenv stays untouched); then the real ``reconciler`` CLI, in
subprocesses, discovers it through its entry point, validates and tests a workflow using it
(including its own error name in ``on:``), and applies that workflow to a real file. The
package's own pytest suite runs against the installed copy too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "examples" / "third-party-plugin"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package installed (not editable) into its own directory."""
    target = tmp_path_factory.mktemp("site")
    build = tmp_path_factory.mktemp("build")
    shutil.copytree(PACKAGE, build / "pkg")  # the build must not litter the checkout
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(build / "pkg"),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=180,
    )
    return target


def reconciler(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site), "NO_COLOR": "1", "COLUMNS": "200"}
    exe = shutil.which("reconciler", path=str(Path(sys.executable).parent))
    assert exe, "the reconciler console script is not installed next to this Python"
    return subprocess.run(
        [exe, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "workflows"
    path.mkdir()
    shutil.copy(PACKAGE / "workflows" / "app-ini.yaml.example", path / "app-ini.yaml")
    return path


def test_the_installed_package_is_discovered_with_its_schema(site: Path, tmp_path: Path) -> None:
    listed = reconciler(site, "plugins", "--output", "json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    names = [p["name"] for p in json.loads(listed.stdout)["plugins"]]
    assert "ini.set" in names and "file.write" in names

    described = reconciler(site, "plugins", "ini.set", "--output", "json", cwd=tmp_path)
    assert described.returncode == 0, described.stderr
    schema = json.dumps(json.loads(described.stdout))
    assert "MalformedIni" in schema and "section" in schema


def test_without_the_package_the_workflow_is_invalid(repo: Path, tmp_path: Path) -> None:
    result = reconciler(tmp_path / "nowhere", "validate", str(repo), cwd=tmp_path)
    assert result.returncode != 0
    assert "unknown plugin 'ini.set'" in result.stdout + result.stderr


def test_validated_tested_and_applied_with_no_change_to_the_core(
    site: Path, repo: Path, tmp_path: Path
) -> None:
    validated = reconciler(site, "validate", "--strict", str(repo), cwd=tmp_path)
    assert validated.returncode == 0, validated.stdout + validated.stderr

    tested = reconciler(site, "test", str(repo), cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr

    workdir = tmp_path / "run"
    workdir.mkdir()
    applied = reconciler(site, "apply", str(repo), cwd=workdir)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "[server]\nport = 8080" in (workdir / "app.ini").read_text()

    # a typo in the plugin's request is caught by validate, with the plugin's own model
    (repo / "app-ini.yaml").write_text(
        (repo / "app-ini.yaml").read_text().replace("section: server", "sektion: server")
    )
    refused = reconciler(site, "validate", str(repo), cwd=tmp_path)
    assert refused.returncode != 0
    assert "sektion" in refused.stdout + refused.stderr


def test_the_package_own_tests_pass_against_the_installed_copy(site: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(PACKAGE),
            "-c",
            str(PACKAGE / "pyproject.toml"),
            str(PACKAGE / "tests"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
