"""The Python builder produces exactly the model the equivalent YAML produces."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from reconciler.config.builder import (
    WorkflowBuilder,
    action,
    after,
    default,
    foreach,
    mock_error,
    on,
    poll,
    retry,
    subscribe,
    when,
)
from reconciler.config.models import Action, Workflow
from reconciler.errors import ConfigError


def from_yaml(text: str) -> Workflow:
    return Workflow.model_validate(yaml.safe_load(text))


NIGHTLY_YAML = """
apiVersion: reconciler/v1
kind: Workflow
metadata:
  name: nightly-report
  labels: {team: sre}
spec:
  interval: 5m
  inputs: {day: mon}
  start: render
  states:
    render:
      do:
        - plugin: file.write
          with: {path: out.txt, content: "${{ inputs.day }}"}
          as: written
      next: done
      onError: failed
    done: {end: success}
    failed: {end: failure}
"""


def nightly() -> WorkflowBuilder:
    return (
        WorkflowBuilder("nightly-report", labels={"team": "sre"})
        .inputs(day="mon")
        .interval("5m")
        .state(
            "render",
            do=[action("file.write", path="out.txt", content="${{ inputs.day }}", as_="written")],
            next="done",
            on_error="failed",
        )
        .end("done")
        .end("failed", "failure")
    )


def test_builder_workflow_equals_the_yaml_parsed_equivalent() -> None:
    assert nightly().build() == from_yaml(NIGHTLY_YAML)


FULL_YAML = """
apiVersion: reconciler/v1
kind: Workflow
metadata: {name: app-database, labels: {team: payments}, annotations: {owner: dba}}
spec:
  interval: 10m
  timeout: 20m
  dependsOn: [postgres-server, network]
  inputs: {database: app, owner: app_user, files: [a, b]}
  secrets: {admin_dsn: "vault:secret/data/payments/admin#dsn"}
  observe:
    plugin: sql.query
    with: {dsn: "${{ secrets.admin_dsn }}", query: select 1}
  desired: {rows: [{datname: app}]}
  checks:
    pre: [{plugin: http.check, with: {url: "http://db-proxy/health"}}]
    during: {every: 30s, checks: [{plugin: http.check, with: {url: "http://db/health", timeout: 2s}}]}
    post: [{plugin: http.check, with: {url: "http://db-proxy/health"}}]
  start: create
  states:
    create:
      action:
        plugin: sql.exec
        with: {sql: create database app}
        as: created
        timeout: 30s
      retry: {attempts: 5, delay: 2s, backoff: 2.0, maxDelay: 1m, jitter: full}
      timeout: 2m
      transitions:
        - {to: wait_ready, "on": success}
        - {to: cleanup, "on": [Conflict, Timeout]}
        - {to: failed, "on": error}
    wait_ready:
      transitions:
        - to: done
          poll: {plugin: sql.query, with: {query: select 1}, every: 5s, until: "size(result.rows) == 1"}
        - to: done
          subscribe: {plugin: nats.subscribe, with: {subject: db.ready}, match: "message.data.db == inputs.database"}
        - {to: failed, after: 10m}
    render:
      foreach:
        items: "${{ inputs.files }}"
        as: file
        concurrency: 2
        tolerate: 10%
        do: [{plugin: file.write, with: {path: "${{ file }}", content: x}}]
      transitions:
        - {to: done, when: "size(outputs.render) > 0"}
        - {to: failed}
    cleanup: {do: [{plugin: sql.exec, with: {sql: drop database app}}], next: failed}
    done: {end: success}
    failed: {end: failure}
  onDelete: cleanup
tests:
  - name: creates when missing
    inputs: {database: other}
    mocks:
      sql.query: [{rows: []}, {rows: [{datname: app}]}]
      sql.exec: [{error: Conflict, message: exists, retryable: false}]
    expect: {path: [create, cleanup, failed], end: failure, outputs: {created: {}}}
"""


def full() -> WorkflowBuilder:
    return (
        WorkflowBuilder("app-database", labels={"team": "payments"}, annotations={"owner": "dba"})
        .interval(timedelta(minutes=10))
        .timeout("20m")
        .depends_on("postgres-server")
        .depends_on("network")
        .inputs({"database": "app"}, owner="app_user")
        .inputs(files=["a", "b"])
        .secrets(admin_dsn="vault:secret/data/payments/admin#dsn")
        .observe("sql.query", dsn="${{ secrets.admin_dsn }}", query="select 1")
        .desired({"rows": [{"datname": "app"}]})
        .checks(
            pre=[action("http.check", url="http://db-proxy/health")],
            during=[action("http.check", url="http://db/health", request={"timeout": "2s"})],
            during_every="30s",
            post=[Action(plugin="http.check", with_={"url": "http://db-proxy/health"})],
        )
        .start("create")
        .state(
            "create",
            on("wait_ready", "success"),
            on("cleanup", "Conflict", "Timeout"),
            on("failed", "error"),
            action=action("sql.exec", sql="create database app", as_="created", timeout="30s"),
            retry=retry(5, delay="2s", backoff=2.0, max_delay="1m", jitter="full"),
            timeout="2m",
        )
        .state(
            "wait_ready",
            poll("done", "sql.query", query="select 1", every="5s", until="size(result.rows) == 1"),
            subscribe(
                "done",
                "nats.subscribe",
                subject="db.ready",
                match="message.data.db == inputs.database",
            ),
            after("failed", "10m"),
        )
        .state(
            "render",
            when("done", "size(outputs.render) > 0"),
            default("failed"),
            foreach=foreach(
                "${{ inputs.files }}",
                action("file.write", path="${{ file }}", content="x"),
                as_="file",
                concurrency=2,
                tolerate="10%",
            ),
        )
        .state("cleanup", do=[action("sql.exec", sql="drop database app")], next="failed")
        .end("done")
        .end("failed", "failure")
        .on_delete("cleanup")
        .test(
            "creates when missing",
            inputs={"database": "other"},
            mocks={
                "sql.query": [{"rows": []}, {"rows": [{"datname": "app"}]}],
                "sql.exec": [mock_error("Conflict", "exists", retryable=False)],
            },
            path=["create", "cleanup", "failed"],
            end="failure",
            outputs={"created": {}},
        )
    )


def test_every_feature_of_the_format_builds_the_same_model_as_yaml() -> None:
    assert full().build() == from_yaml(FULL_YAML)


def test_built_workflow_round_trips_through_model_dump_by_alias() -> None:
    for builder in (nightly(), full()):
        wf = builder.build()
        assert Workflow.model_validate(wf.model_dump(by_alias=True)) == wf
        assert Workflow.model_validate(wf.model_dump(by_alias=True, mode="json")) == wf


def test_to_yaml_is_a_document_that_parses_back_to_the_same_model() -> None:
    text = full().to_yaml()
    assert "'on':" in text  # quoted, so YAML 1.1 readers do not turn the key into True
    assert from_yaml(text) == full().build()


def test_to_yaml_loads_through_the_repository_loader() -> None:
    loader = pytest.importorskip("reconciler.config.loader")
    result = loader.load_text(full().to_yaml(), path="app-database.yaml")
    assert [p for p in result.problems if p.is_error] == []
    assert [lw.workflow for lw in result.workflows] == [full().build()]


def test_first_state_is_start_unless_named() -> None:
    wf = WorkflowBuilder("x").state("a", next="b").end("b").build()
    assert wf.spec.start == "a"
    wf = WorkflowBuilder("x").state("a", next="b").end("b").start("b").build()
    assert wf.spec.start == "b"


def test_invalid_input_fails_with_the_same_validation_error_as_yaml() -> None:
    builder = WorkflowBuilder("Bad_Name").state("a", next="b").end("b")
    with pytest.raises(ValidationError) as from_builder:
        builder.build()
    with pytest.raises(ValidationError) as from_doc:
        Workflow.model_validate(builder.to_dict())
    assert from_builder.value.errors() == from_doc.value.errors()
    assert from_builder.value.errors()[0]["loc"] == ("metadata", "name")


def test_transition_with_two_conditions_is_rejected_like_in_yaml() -> None:
    two: dict[str, Any] = {**when("b", "true"), **after("b", "1m")}
    with pytest.raises(ValidationError, match="one condition"):
        WorkflowBuilder("x").state("a", two).end("b").build()


def test_state_without_transitions_is_rejected_like_in_yaml() -> None:
    with pytest.raises(ValidationError, match="needs transitions"):
        WorkflowBuilder("x").state("a", do=[action("file.read", path="p")]).build()


def test_defining_a_state_twice_is_an_error_at_the_call() -> None:
    with pytest.raises(ConfigError, match="defined twice"):
        WorkflowBuilder("x").end("a").end("a")


def test_on_without_a_name_is_an_error() -> None:
    with pytest.raises(ConfigError, match="at least one name"):
        on("b")


def test_builder_copies_what_it_is_given() -> None:
    files = ["a"]
    do = [action("file.write", path="p", content="c")]
    builder = WorkflowBuilder("x").inputs(files=files).state("a", do=do, next="b").end("b")
    files.append("b")
    do[0]["with"]["path"] = "changed"
    wf = builder.build()
    assert wf.spec.inputs == {"files": ["a"]}
    assert wf.spec.states["a"].do[0].with_ == {"path": "p", "content": "c"}
    assert builder.build() == wf


def test_request_fields_that_collide_with_helper_arguments_go_through_request() -> None:
    doc = action("http.check", url="http://x", request={"timeout": "5s"}, timeout="10s")
    assert doc == {
        "plugin": "http.check",
        "with": {"url": "http://x", "timeout": "5s"},
        "timeout": "10s",
    }


def test_builder_reproduces_the_quickstart_motd_example() -> None:
    loader = pytest.importorskip("reconciler.config.loader")
    path = Path(__file__).resolve().parents[3] / "examples" / "quickstart" / "motd.yaml"
    (loaded,) = loader.load_file(path).workflows
    message = "Welcome! This machine is looked after by reconciler.\n"
    write_ok = {"changed": True, "path": "/tmp/motd", "sha256": "0000"}
    built = (
        WorkflowBuilder("motd", labels={"example": "quickstart"})
        .interval("1m")
        .inputs(path="quickstart-out/motd", message=message)
        .observe("file.read", path="${{ inputs.path }}", missingOk=True)
        .desired({"exists": True, "content": "${{ inputs.message }}"})
        .state(
            "write",
            action=action(
                "file.write",
                path="${{ inputs.path }}",
                content="${{ inputs.message }}",
                as_="written",
            ),
            next="verify",
            on_error="failed",
        )
        .state(
            "verify",
            when("done", "outputs.check.content == inputs.message"),
            default("failed"),
            action=action("file.read", path="${{ inputs.path }}", as_="check"),
        )
        .end("done")
        .end("failed", "failure")
        .test(
            "writes the file when it is missing",
            mocks={
                "file.read": [{"exists": False}, {"exists": True, "content": message}],
                "file.write": [write_ok],
            },
            path=["write", "verify", "done"],
            end="success",
        )
        .test(
            "nothing runs when the file is already right",
            mocks={"file.read": [{"exists": True, "content": message}]},
            path=[],
        )
        .test(
            "a write that does not stick fails the run",
            mocks={
                "file.read": [{"exists": True, "content": "edited by hand\n"}] * 2,
                "file.write": [write_ok],
            },
            path=["write", "verify", "failed"],
            end="failure",
        )
        .test(
            "a write error is routed to the failure end",
            mocks={
                "file.read": [{"exists": False}],
                "file.write": [mock_error("PermissionDenied", "read-only file system")],
            },
            path=["write", "failed"],
            end="failure",
        )
        .build()
    )
    assert built == loaded.workflow
