"""``reconciler validate`` and ``reconciler schema`` as users and CI run them: a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from reconciler.config.loader import YamlLoader
from reconciler.plugin import PluginRegistry
from tests.support.terminal import piped_beside_a_terminal

REPO = Path(__file__).resolve().parents[2]
TREE = "tests/fixtures/broken_tree"
NEEDED_PLUGINS = ("file.read", "file.write")


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def require_builtin_plugins() -> None:
    registry = PluginRegistry.discover()
    missing = [name for name in NEEDED_PLUGINS if name not in registry]
    if missing:
        pytest.skip(f"built-in plugin(s) not available yet: {', '.join(missing)}")


EXPECTED_ERRORS = [
    ("broken/01-yaml-syntax.yaml", 9, 6, "YAML syntax error"),
    ("broken/02-unknown-key.yaml", 10, 7, "unknown key 'retires'"),
    ("broken/03-unknown-plugin.yaml", 10, 17, "unknown plugin 'file.wirte'"),
    ("broken/04-bad-with.yaml", 14, 17, "with.mode"),
    ("broken/05-bad-cel.yaml", 12, 17, "invalid CEL 'inputs.count >'"),
    ("broken/06-unknown-target.yaml", 12, 16, "unknown state 'finish'"),
    ("broken/07-no-path-to-end.yaml", 8, 5, "has no path to an end state"),
    ("broken/08-depends-unknown.yaml", 8, 7, "unknown workflow 'postgres-server'"),
    ("broken/09-duplicate-name.yaml", 4, 9, "duplicate workflow name 'twice'"),
    ("broken/09-duplicate-name.yaml", 12, 9, "duplicate workflow name 'twice'"),
    ("broken/10-clear-text-password.yaml", 8, 21, "clear-text credential"),
    ("broken/11-binary.yaml", 1, 1, "binary file"),
]


def test_broken_tree_reports_every_broken_file_at_its_line_and_exits_1() -> None:
    require_builtin_plugins()
    proc = run("validate", TREE)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()
    errors = [line for line in lines if ": error: " in line]
    for rel, line, column, fragment in EXPECTED_ERRORS:
        prefix = f"{TREE}/{rel}:{line}:{column}: error: "
        assert any(e.startswith(prefix) and fragment in e for e in errors), (prefix, lines)
    assert len(errors) == len(EXPECTED_ERRORS), errors
    warnings = [line for line in lines if ": warning: " in line]
    assert warnings == [
        f"{TREE}/broken/07-no-path-to-end.yaml:11:5: warning: "
        "state 'done' is unreachable from start 'wait'"
    ]
    assert not any("/good/" in line or ".hidden" in line for line in lines)
    assert lines[-1].endswith(f"{len(EXPECTED_ERRORS)} error(s), 1 warning(s): invalid")


LONG_NAME = "daemon-preflight-checks-of-the-platform-team-for-every-region"


def test_problems_and_tables_piped_beside_a_narrow_terminal_are_whole_lines(
    tmp_path: Path,
) -> None:
    require_builtin_plugins()
    folder = tmp_path / "a-directory-with-a-rather-long-name-as-monorepos-have"
    folder.mkdir()
    bad = folder / f"{LONG_NAME}-broken.yaml"
    bad.write_text(
        "apiVersion: reconciler/v1\nkind: Workflow\nmetadata: {name: preflight}\nspec:\n"
        "  start: go\n  states:\n"
        "    go: {action: {plugin: file.wirte, with: {}}, next: done}\n"
        "    done: {end: success}\n"
    )
    (folder / "good.yaml").write_text(
        f"apiVersion: reconciler/v1\nkind: Workflow\nmetadata: {{name: {LONG_NAME}}}\n"
        "spec:\n  start: done\n  states:\n    done: {end: success}\n"
    )
    for command in ("validate", "plan"):
        proc = piped_beside_a_terminal(
            [sys.executable, "-m", "reconciler", command, str(folder)], columns=60, env=os.environ
        )
        assert proc.returncode == 1, (command, proc.stdout)
        lines = proc.stdout.splitlines()
        error = next(line for line in lines if ": error: " in line)
        assert error.startswith(f"{bad}:7:"), (command, lines)
        assert "unknown plugin 'file.wirte'" in error, (command, lines)
        assert "…" not in proc.stdout, (command, proc.stdout)
    row = next(line for line in lines if line.startswith("│") and LONG_NAME in line)
    assert "would-run" in row, lines


def test_json_output_lists_problems_and_a_summary() -> None:
    require_builtin_plugins()
    proc = run("validate", TREE, "--output", "json")
    assert proc.returncode == 1
    report: dict[str, Any] = json.loads(proc.stdout)
    assert report["summary"]["valid"] is False
    assert report["summary"]["errors"] == len(EXPECTED_ERRORS)
    assert report["summary"]["files"] == 16
    found = {(p["path"], p["line"], p["column"]) for p in report["problems"]}
    for rel, line, column, _ in EXPECTED_ERRORS:
        assert (f"{TREE}/{rel}", line, column) in found
    by_path = {p["path"]: p for p in report["problems"]}
    assert by_path[f"{TREE}/broken/10-clear-text-password.yaml"]["workflow"] == (
        "clear-text-password"
    )
    assert "hunter2" not in proc.stdout


def test_good_files_are_valid_and_exit_0() -> None:
    require_builtin_plugins()
    proc = run("validate", f"{TREE}/good")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == ["5 file(s), 6 workflow(s): 0 error(s), 0 warning(s): valid"]


def test_a_single_file_and_several_paths_are_accepted() -> None:
    require_builtin_plugins()
    proc = run(
        "validate",
        f"{TREE}/good/hello-file.yaml",
        f"{TREE}/broken/08-depends-unknown.yaml",
    )
    assert proc.returncode == 1
    # hello-file is known because it was loaded in the same run; postgres-server is not
    [error] = [line for line in proc.stdout.splitlines() if ": error: " in line]
    assert error.startswith(f"{TREE}/broken/08-depends-unknown.yaml:8:7: error: ")


def test_missing_path_is_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    proc = run("validate", str(tmp_path / "nope"))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nope'}: no such file or directory"
    ]


def test_empty_directory_is_invalid_with_one_clear_line(tmp_path: Path) -> None:
    proc = run("validate", str(tmp_path))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert f"{tmp_path}:1:1: error: no workflow files" in proc.stdout


def test_directory_with_only_foreign_documents_is_invalid(tmp_path: Path) -> None:
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\n")
    proc = run("validate", str(tmp_path))
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"{tmp_path}/cm.yaml:2:7: warning: not a reconciler workflow")
    assert (
        lines[1]
        == f"{tmp_path}:1:1: error: no workflow files (.yaml/.yml with kind: Workflow) found"
    )


def test_binary_file_is_one_clear_problem(tmp_path: Path) -> None:
    binary = tmp_path / "image.yaml"
    binary.write_bytes(bytes(range(256)))
    proc = run("validate", str(binary))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stdout.splitlines()[0] == (
        f"{binary}:1:1: error: binary file (contains NUL bytes), not YAML"
    )


def test_billion_laughs_is_refused_quickly(tmp_path: Path) -> None:
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, cur in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    proc = run("validate", str(tmp_path))  # subprocess timeout is the safety bound
    assert proc.returncode == 1
    assert "refused: document expands to more than" in proc.stdout


def test_strict_turns_missing_failure_transitions_into_errors(tmp_path: Path) -> None:
    require_builtin_plugins()
    (tmp_path / "w.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Workflow\nmetadata: {name: w}\nspec:\n"
        "  start: a\n  states:\n"
        "    a: {action: {plugin: file.read, with: {path: hostname}}, next: done}\n"
        "    done: {end: success}\n"
    )
    relaxed = run("validate", "w.yaml", cwd=tmp_path)
    assert relaxed.returncode == 0
    assert relaxed.stdout.startswith("w.yaml:7:5: warning: state 'a' runs actions")
    strict = run("validate", "--strict", "w.yaml", cwd=tmp_path)
    assert strict.returncode == 1
    assert strict.stdout.startswith("w.yaml:7:5: error: state 'a' runs actions")


GRANTS_WORKFLOW = """\
apiVersion: reconciler/v1
kind: Workflow
metadata: {name: w}
spec:
  secrets: {token: "env:RECONCILER_API_TOKEN", app: "env:APP_PASSWORD"}
  start: a
  states:
    a:
      action: {plugin: file.write, with: {path: /srv/app/hook, content: "${{ secrets.app }}"}}
      next: done
      onError: failed
    done: {end: success}
    failed: {end: failure}
"""


def test_literal_paths_and_variables_the_grants_refuse_are_reported_at_their_line(
    tmp_path: Path,
) -> None:
    require_builtin_plugins()
    (tmp_path / "w.yaml").write_text(GRANTS_WORKFLOW)
    proc = run("validate", "w.yaml", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[:3] == [
        "w.yaml:5:20: error: EnvNotAllowed: environment variable RECONCILER_API_TOKEN is not "
        "allowed: it holds the daemon's own settings or credentials",
        "w.yaml:5:53: error: EnvNotAllowed: environment variable APP_PASSWORD is not allowed: "
        "it matches no --allow-env glob (RECONCILER_SECRET_*)",
        f"w.yaml:9:49: error: PathNotAllowed: path '/srv/app/hook' is not allowed: "
        f"/srv/app/hook is outside the file roots ({tmp_path.resolve()}); the operator grants "
        "more with --file-root",
    ]


def test_validate_takes_file_roots_and_allowed_variables_like_run(tmp_path: Path) -> None:
    require_builtin_plugins()
    (tmp_path / "w.yaml").write_text(GRANTS_WORKFLOW)
    proc = run("validate", "--file-root", "/srv/app", "--allow-env", "*", "w.yaml", cwd=tmp_path)
    assert proc.returncode == 1
    errors = [line for line in proc.stdout.splitlines() if ": error: " in line]
    # a wide --allow-env never reaches the daemon's own credentials
    assert len(errors) == 1 and "EnvNotAllowed" in errors[0] and "RECONCILER_API_TOKEN" in errors[0]


# -- reconciler schema ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("schema") / "workflow.schema.json"
    proc = run("schema", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    loaded: dict[str, Any] = json.loads(out.read_text())
    return loaded


def test_schema_is_valid_json_schema(schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(schema)


def test_schema_goes_to_stdout_without_out() -> None:
    proc = run("schema")
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["title"]


def test_schema_output_json_is_the_format_and_writes_no_file(tmp_path: Path) -> None:
    proc = run("schema", "-o", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["title"]
    assert list(tmp_path.iterdir()) == []


def test_schema_output_given_a_file_name_points_to_out(tmp_path: Path) -> None:
    proc = run("schema", "-o", "schema.json", cwd=tmp_path)
    assert proc.returncode == 2
    assert "to write a file use --out schema.json" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_good_workflows_validate_against_the_schema(schema: dict[str, Any]) -> None:
    require_builtin_plugins()
    validator = jsonschema.Draft202012Validator(schema)
    docs = []
    for file in sorted((REPO / TREE / "good").iterdir()):
        docs.extend(d for d in yaml.load_all(file.read_text(), Loader=YamlLoader) if d)
    assert len(docs) == 6
    for doc in docs:
        errors = [e.message for e in validator.iter_errors(doc)]
        assert errors == [], (doc["metadata"]["name"], errors)


def test_schema_checks_each_plugins_with_block(schema: dict[str, Any]) -> None:
    require_builtin_plugins()
    validator = jsonschema.Draft202012Validator(schema)

    def workflow(with_: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "reconciler/v1",
            "kind": "Workflow",
            "metadata": {"name": "s"},
            "spec": {
                "start": "a",
                "states": {
                    "a": {"action": {"plugin": "file.write", "with": with_}, "next": "b"},
                    "b": {"end": "success"},
                },
            },
        }

    assert validator.is_valid(workflow({"path": "/x", "content": "c"}))
    assert validator.is_valid(workflow({"path": "${{ inputs.p }}", "content": "c"}))
    assert not validator.is_valid(workflow({"path": "/x", "contents": "c"}))
    assert not validator.is_valid(workflow({"path": "/x"}))
    assert "plugin.file.write.request" in schema["$defs"]
