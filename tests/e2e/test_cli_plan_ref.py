"""``reconciler plan --ref`` in a subprocess against a real git repository with two branches:
the branch's change is reported against the base with the field diff, from git objects only
(the working tree, its uncommitted edit and the live file are untouched); a broken workflow at
the ref is reported with ``path:line:col``; a ref that does not exist is a clear error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.repos import commit, git
from tests.support.workflows import file_workflow, put


def plan(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "plan", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def two_branches(repo: Path, live: Path) -> str:
    """``main`` keeps ``live`` at "hello"; ``feature`` changes it to "bonjour" and adds a
    workflow. Back on main, with an uncommitted edit in the working tree."""
    live.write_text("hello")
    put(repo, file_workflow("motd", live, "hello", keep=True))
    put(repo, file_workflow("gone", live.with_name("gone.txt"), "x"))
    commit(repo, "main")
    git(repo, "checkout", "-q", "-b", "feature")
    put(repo, file_workflow("motd", live, "bonjour", keep=True))
    put(repo, file_workflow("extra", live.with_name("extra.txt"), "new", keep=True))
    (repo / "gone.yaml").unlink()
    sha = commit(repo, "feature")
    git(repo, "checkout", "-q", "main")
    (repo / "motd.yaml").write_text("uncommitted edit: not YAML of a workflow [\n")
    return sha


def test_plan_ref_reports_the_branch_against_main_without_touching_anything(
    tmp_path: Path, repo: Path
) -> None:
    live = tmp_path / "motd.txt"
    sha = two_branches(repo, live)

    # from tmp_path (the file root of one-shot commands is the working directory)
    proc = plan(
        "--ref", "feature", "--base", "main", "-o", "json", "--repo", str(repo), cwd=tmp_path
    )

    assert "Traceback" not in proc.stderr and proc.returncode == 0, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    assert report["revision"] == sha and report["base"] == git(repo, "rev-parse", "main")
    by_name = {w["workflow"]: w for w in report["workflows"]}
    assert {n: w["change"] for n, w in by_name.items()} == {
        "motd": "changed",
        "extra": "new",
        "gone": "removed",
    }
    assert by_name["motd"]["wouldRun"] is True and by_name["motd"]["sync"] == "OutOfSync"
    assert {"path": "content", "desired": "bonjour", "observed": "hello"} in by_name["motd"]["diff"]
    assert "out of sync" in by_name["motd"]["reason"]
    # read from git objects: the working tree keeps its edit, the live files are untouched
    assert (repo / "motd.yaml").read_text().startswith("uncommitted edit")
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert live.read_text() == "hello" and not live.with_name("extra.txt").exists()


def test_plan_ref_table_and_detailed_exitcode(tmp_path: Path, repo: Path) -> None:
    two_branches(repo, tmp_path / "motd.txt")
    proc = plan(
        "--ref",
        "feature",
        "--base",
        "main",
        "--detailed-exitcode",
        "--repo",
        str(repo),
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert "motd" in proc.stdout and "changed" in proc.stdout and "bonjour" in proc.stdout


def test_plan_ref_reports_a_broken_workflow_with_path_line_col(tmp_path: Path, repo: Path) -> None:
    two_branches(repo, tmp_path / "motd.txt")
    git(repo, "checkout", "-q", "-f", "-b", "broken", "main")
    (repo / "motd.yaml").write_text("apiVersion: reconciler/v1\nkind: Workflow\nspec: [\n")
    commit(repo, "break motd")
    git(repo, "checkout", "-q", "main")

    proc = plan(
        "--ref", "broken", "--base", "main", "-o", "json", "--repo", str(repo), cwd=tmp_path
    )

    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["failed"] and any(p.startswith("motd.yaml:4:") for p in report["introduced"])
    motd = next(w for w in report["workflows"] if w["workflow"] == "motd")
    assert motd["valid"] is False and motd["change"] == "changed"


def test_plan_ref_of_a_missing_branch_is_a_clear_error(tmp_path: Path, repo: Path) -> None:
    two_branches(repo, tmp_path / "motd.txt")
    proc = plan("--ref", "no-such-branch", cwd=repo)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "no-such-branch does not exist" in proc.stderr


def test_plan_ref_against_a_remote_url(tmp_path: Path, repo: Path) -> None:
    two_branches(repo, tmp_path / "motd.txt")
    proc = plan(
        "--ref",
        "feature",
        "--base",
        "main",
        "--repo",
        f"file://{repo}",
        "-o",
        "json",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    changes = {w["workflow"]: w["change"] for w in json.loads(proc.stdout)["workflows"]}
    assert changes["motd"] == "changed"
