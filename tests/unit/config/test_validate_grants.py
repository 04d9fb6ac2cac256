"""Validation against the operator's grants: literal paths and env:/file: references a run would
refuse are reported at their line, before anything runs."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from reconciler.config.loader import load_text
from reconciler.config.snapshot import Problem, Snapshot
from reconciler.config.validate import ValidationCache, validate_snapshot, validate_workflow
from reconciler.grants import Grants
from reconciler.plugin import PluginRegistry, local_path_fields

REGISTRY = PluginRegistry.discover()


def problems(text: str, grants: Grants | None, workdir: Path) -> list[Problem]:
    result = load_text(dedent(text), path="w.yaml")
    assert result.problems == [], [str(p) for p in result.problems]
    [lw] = result.workflows
    return [p for p in validate_workflow(lw, REGISTRY, grants=grants, workdir=workdir)]


def shown(found: list[Problem]) -> list[str]:
    return [str(p) for p in found]


WRITE = """\
apiVersion: reconciler/v1
kind: Workflow
metadata: {{name: w}}
spec:
  inputs: {{path: /etc/passwd}}
  secrets: {{t: "{secret}"}}
  start: a
  states:
    a:
      action: {{plugin: file.write, with: {{path: "{path}", content: "${{{{ secrets.t }}}}"}}}}
      next: done
      onError: failed
    done: {{end: success}}
    failed: {{end: failure}}
"""


@pytest.fixture
def grants(tmp_path: Path) -> Grants:
    return Grants.for_daemon(
        workdir=tmp_path, file_roots=None, allow_env=["APP_*"], deny=[tmp_path / ".reconciler"]
    )


def test_a_literal_path_outside_the_file_roots_is_path_not_allowed_at_its_line(
    tmp_path: Path, grants: Grants
) -> None:
    found = problems(WRITE.format(secret="env:APP_T", path="/etc/cron.d/job"), grants, tmp_path)
    assert len(found) == 1
    assert str(found[0]).startswith("w.yaml:10:49: PathNotAllowed: path '/etc/cron.d/job'")
    assert "--file-root" in found[0].message


@pytest.mark.parametrize("path", ["../elsewhere/x", ".reconciler/repos/r.git/hooks/post-merge"])
def test_dot_dot_and_the_data_directory_are_refused_as_literals(
    tmp_path: Path, grants: Grants, path: str
) -> None:
    found = problems(WRITE.format(secret="env:APP_T", path=path), grants, tmp_path)
    assert [p.message.split(":")[0] for p in found] == ["PathNotAllowed"]


def test_a_granted_literal_and_a_templated_path_pass(tmp_path: Path, grants: Grants) -> None:
    assert problems(WRITE.format(secret="env:APP_T", path="out/x"), grants, tmp_path) == []
    templated = WRITE.format(secret="env:APP_T", path="${{ inputs.path }}")
    assert problems(templated, grants, tmp_path) == []  # checked when the plugin runs


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        ("env:HOME", "matches no --allow-env glob"),
        ("env:RECONCILER_API_TOKEN", "daemon's own"),
        ("env:VAULT_TOKEN", "daemon's own"),
    ],
)
def test_a_literal_env_reference_the_grants_refuse_is_env_not_allowed(
    tmp_path: Path, grants: Grants, secret: str, reason: str
) -> None:
    found = problems(WRITE.format(secret=secret, path="out/x"), grants, tmp_path)
    assert len(found) == 1 and found[0].line == 6
    assert found[0].message.startswith("EnvNotAllowed: environment variable")
    assert reason in found[0].message


def test_the_daemons_own_variables_are_refused_even_when_every_variable_is_allowed(
    tmp_path: Path,
) -> None:
    wide = Grants.local(tmp_path, allow_env=["*"])
    found = problems(WRITE.format(secret="env:RECONCILER_WEBHOOK_SECRET", path="x"), wide, tmp_path)
    assert [p.message.split(":")[0] for p in found] == ["EnvNotAllowed"]
    assert problems(WRITE.format(secret="env:ANYTHING", path="x"), wide, tmp_path) == []


def test_a_literal_file_reference_outside_the_roots_is_path_not_allowed(
    tmp_path: Path, grants: Grants
) -> None:
    found = problems(WRITE.format(secret="file:/proc/self/environ", path="x"), grants, tmp_path)
    assert len(found) == 1 and found[0].line == 6
    assert found[0].message.startswith("PathNotAllowed: path '/proc/self/environ'")


def test_shell_run_cwd_is_a_path_field_too(tmp_path: Path, grants: Grants) -> None:
    text = """\
    apiVersion: reconciler/v1
    kind: Workflow
    metadata: {name: w}
    spec:
      start: a
      states:
        a:
          action: {plugin: shell.run, with: {argv: [ls], cwd: /}}
          next: done
          onError: failed
        done: {end: success}
        failed: {end: failure}
    """
    assert shown(problems(text, grants, tmp_path)) == [
        f"w.yaml:8:59: PathNotAllowed: path '/' is not allowed: / is outside the file "
        f"roots ({tmp_path}); the operator grants more with --file-root"
    ]


def test_without_grants_nothing_is_checked(tmp_path: Path) -> None:
    text = WRITE.format(secret="env:RECONCILER_API_TOKEN", path="/etc/cron.d/job")
    assert problems(text, None, tmp_path) == []


def test_the_validation_cache_follows_the_grants(tmp_path: Path, grants: Grants) -> None:
    result = load_text(WRITE.format(secret="env:APP_T", path="/srv/x"), path="w.yaml")
    snapshot = Snapshot.from_files("r1", {"w.yaml": result})
    cache = ValidationCache()
    first = validate_snapshot(snapshot, REGISTRY, cache=cache, grants=grants, workdir=tmp_path)
    assert [p.message.split(":")[0] for p in first] == ["PathNotAllowed"]
    wider = Grants.for_daemon(workdir=tmp_path, file_roots=[Path("/srv")], allow_env=["APP_*"])
    assert validate_snapshot(snapshot, REGISTRY, cache=cache, grants=wider, workdir=tmp_path) == []


def test_path_fields_are_found_by_their_marker() -> None:
    assert set(local_path_fields(REGISTRY.get("file.write").Request)) == {"path"}
    assert set(local_path_fields(REGISTRY.get("shell.run").Request)) == {"cwd", "creates"}
    assert local_path_fields(REGISTRY.get("http.check").Request) == {}
