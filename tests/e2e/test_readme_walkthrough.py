"""The README's walkthrough, its commands run by bash as written: ``/tmp`` becomes the test's
directory and the daemon listens on a free port instead of 8080 (tests run side by side);
everything else is the README's text. The workflows converge, ``reconciler status`` says so,
and the repository stays clean: the daemon writes its data and the workflows' files elsewhere.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.daemon import without_settings
from tests.support.net import free_port
from tests.support.waiting import until

pytestmark = pytest.mark.timeout(150)

ROOT = Path(__file__).resolve().parents[2]


def walkthrough_commands() -> list[str]:
    """The command lines of the README's walkthrough block (continuations joined)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Walkthrough") :]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.S)
    assert block is not None
    joined = block.group(1).replace("\\\n", " ")
    return [line for line in joined.splitlines() if line.strip()]


def test_the_readme_walkthrough_converges_and_leaves_the_repository_clean(
    tmp_path: Path,
) -> None:
    commands = walkthrough_commands()
    start = next(i for i, c in enumerate(commands) if c.startswith("reconciler run"))
    port = free_port()
    setup = [c.replace("/tmp/", f"{tmp_path}/") for c in commands[:start]]
    run = commands[start].replace("/tmp/", f"{tmp_path}/").replace(" &", "")
    run = run.split("#")[0].strip() + f" --listen 127.0.0.1:{port}"
    env = {
        **without_settings(),
        # the README's first line puts the checkout's .venv/bin on PATH; here, this Python's
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "RECONCILER_SERVER": f"http://127.0.0.1:{port}",
        "COLUMNS": "200",
    }
    exported_file = tmp_path / "exported.env"
    script = "\n".join(["set -euo pipefail", f"cd {ROOT}", *setup, f"env > {exported_file}"])
    subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, check=True, timeout=60, text=True)
    exported = dict(
        line.split("=", 1) for line in exported_file.read_text().splitlines() if "=" in line
    )
    daemon = subprocess.Popen(
        ["bash", "-c", f"exec {run}"],
        cwd=tmp_path / "workflows",
        env={**env, "RECONCILER_API_TOKEN": exported["RECONCILER_API_TOKEN"]},
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "daemon.log").open("wb"),
    )
    try:

        def converged() -> bool:
            assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()
            status = subprocess.run(
                ["bash", "-c", "reconciler status"],
                cwd=tmp_path / "workflows",
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            return status.returncode == 0 and "Converged" in status.stdout

        until(converged, 90, "reconciler status to say every workflow converged")
        clean = subprocess.run(
            ["git", "status", "--short"],
            cwd=tmp_path / "workflows",
            capture_output=True,
            text=True,
            check=True,
        )
        assert clean.stdout == ""
        assert (tmp_path / "reconciler-work" / "quickstart-out" / "motd").exists()
        assert (tmp_path / "reconciler-data").is_dir()
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
