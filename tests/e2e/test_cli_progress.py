"""Long one-shot work shows progress on a terminal, and nothing of it reaches a pipe: a
``validate`` of 300 workflow files draws its bars on the terminal beside a piped stdout, and the
same command with stderr piped too writes no bar at all."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.daemon import CLI, without_settings
from tests.support.terminal import beside_a_terminal
from tests.support.workflows import file_workflow, put


def many(tmp_path: Path, count: int = 300) -> Path:
    tree = tmp_path / "workflows"
    tree.mkdir()
    for i in range(count):
        put(tree, file_workflow(f"wf-{i:04d}", f"out/{i}.txt", "x"))
    return tree


def test_validate_of_many_files_shows_its_progress_on_the_terminal_only(tmp_path: Path) -> None:
    tree = many(tmp_path)
    done, drawn = beside_a_terminal(
        [*CLI, "validate", str(tree)], env=without_settings(), cwd=tmp_path
    )
    assert done.returncode == 0, drawn
    assert "300 file(s), 300 workflow(s)" in done.stdout
    assert "reading files" in drawn and "checking workflows" in drawn
    assert "/300" in drawn  # "N/300" of a bar
    assert "reading files" not in done.stdout  # the pipe carries the result only

    piped = subprocess.run(
        [*CLI, "validate", str(tree)],
        capture_output=True,
        text=True,
        env=without_settings(),
        cwd=tmp_path,
        timeout=60,
    )
    assert piped.returncode == 0
    assert piped.stdout == done.stdout
    assert "reading files" not in piped.stderr and "checking" not in piped.stderr
