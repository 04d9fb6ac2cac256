"""Static validation: each check reports the offending node's line and never stops early."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Mapping
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from textwrap import dedent, indent
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import Field

from reconciler.config.loader import load_text, load_tree
from reconciler.config.snapshot import LoadedWorkflow, Problem, Snapshot
from reconciler.config.validate import (
    find_credentials,
    validate_snapshot,
    validate_workflow,
)
from reconciler.errors import PluginError
from reconciler.plugin import (
    ActionContext,
    Plugin,
    PluginRegistry,
    Request,
    Response,
    SubscribePlugin,
)


class Locked(PluginError):
    """The target is locked by someone else."""


class ReadRequest(Request):
    path: str


class WriteRequest(Request):
    path: str
    content: str
    mode: int = 0o644
    tags: list[str] = Field(default_factory=list)


class EventsRequest(Request):
    subject: str


class Read(Plugin[ReadRequest, Response]):
    """Reads (a check plugin)."""

    check = True
    Request = ReadRequest
    Response = Response

    async def run(self, request: ReadRequest, context: ActionContext) -> Response:
        return Response()


class Write(Plugin[WriteRequest, Response]):
    """Writes."""

    Request = WriteRequest
    Response = Response
    errors = (Locked,)

    async def run(self, request: WriteRequest, context: ActionContext) -> Response:
        return Response(changed=True)


class Events(SubscribePlugin[EventsRequest, Response]):
    """Feeds subscribe conditions."""

    Request = EventsRequest
    Response = Response

    async def run(self, request: EventsRequest, context: ActionContext) -> Response:
        return Response()

    async def subscribe(
        self, request: EventsRequest, context: ActionContext
    ) -> AsyncIterator[Mapping[str, Any]]:
        yield {"data": {}}


REGISTRY = PluginRegistry({"t.read": Read, "t.write": Write, "t.events": Events})

HEAD = dedent(
    """\
    apiVersion: reconciler/v1
    kind: Workflow
    metadata:
      name: {name}
    spec:
    """
)


def load(body: str, name: str = "demo") -> LoadedWorkflow:
    text = HEAD.format(name=name) + indent(dedent(body), "  ")
    result = load_text(text, path="w.yaml")
    assert result.problems == [], [str(p) for p in result.problems]
    [lw] = result.workflows
    return lw


def check(body: str, *, strict: bool = False) -> list[Problem]:
    return validate_workflow(load(body), REGISTRY, strict=strict)


def where(problems: list[Problem]) -> list[tuple[int, str]]:
    return [(p.line, p.severity) for p in problems]


def test_valid_workflow_has_no_problems() -> None:
    problems = check(
        """\
          inputs: {path: /tmp/x}
          secrets: {token: "env:TOKEN"}
          observe: {plugin: t.read, with: {path: "${{ inputs.path }}"}}
          inSync: "observed.exists"
          checks:
            pre: [{plugin: t.read, with: {path: /health}}]
          start: write
          states:
            write:
              action:
                plugin: t.write
                with: {path: "${{ inputs.path }}", content: "t=${{ secrets.token }}", mode: "${{ 420 }}"}
              transitions:
                - {to: wait, on: success}
                - {to: failed, on: [Locked, Timeout]}
                - {to: failed, on: error}
            wait:
              transitions:
                - to: done
                  poll: {plugin: t.read, with: {path: /ready}, until: "result.ok"}
                - to: done
                  subscribe: {plugin: t.events, with: {subject: ready}, match: "message.data.ok"}
                - {to: failed, after: 1m}
            done: {end: success}
            failed: {end: failure}
        """
    )
    assert problems == []


def test_unknown_plugin_is_reported_at_the_plugin_with_a_suggestion() -> None:
    problems = check(
        """\
          start: a
          states:
            a:
              action: {plugin: t.writ, with: {}}
              next: done
              onError: done
            done: {end: success}
        """
    )
    [problem] = problems
    assert (problem.line, problem.column) == (9, 24)
    assert "unknown plugin 't.writ'" in problem.message and "'t.write'" in problem.message


def test_bad_with_reports_every_field_at_its_line() -> None:
    problems = check(
        """\
          start: a
          states:
            a:
              action:
                plugin: t.write
                with:
                  path: /tmp/x
                  contnt: x
                  mode: lots
              next: done
              onError: done
            done: {end: success}
        """
    )
    messages = {p.line: p.message for p in problems}
    assert set(messages) == {11, 13, 14}
    assert "missing required field 'content'" in messages[11]
    assert "unknown field 'contnt'" in messages[13] and "'content'" in messages[13]
    assert "with.mode" in messages[14]


def test_templated_values_count_as_present_and_are_not_type_checked() -> None:
    problems = check(
        """\
          inputs: {n: 1}
          start: a
          states:
            a:
              action:
                plugin: t.write
                with: {path: /x, content: "${{ inputs.c }}", mode: "${{ inputs.n }}", tags: "${{ [] }}"}
              next: done
              onError: done
            done: {end: success}
        """
    )
    assert problems == []


def test_non_check_plugin_in_observe_poll_and_checks_is_an_error() -> None:
    problems = check(
        """\
          observe: {plugin: t.write, with: {path: a, content: b}}
          checks:
            pre: [{plugin: t.write, with: {path: a, content: b}}]
            during: {every: 5s, checks: [{plugin: t.write, with: {path: a, content: b}}]}
            post: [{plugin: t.write, with: {path: a, content: b}}]
          start: wait
          states:
            wait:
              transitions:
                - to: done
                  poll: {plugin: t.write, with: {path: a, content: b}, until: "true"}
                - {to: done, subscribe: {plugin: t.read, with: {path: a}}}
            done: {end: success}
        """
    )
    assert [p.line for p in problems] == [6, 8, 9, 10, 16, 17]
    assert all("not a check" in p.message for p in problems[:5])
    assert "cannot feed a subscribe" in problems[5].message


def test_cel_that_does_not_compile_is_reported_at_its_line_everywhere() -> None:
    problems = check(
        """\
          inputs: {x: 1}
          observe: {plugin: t.read, with: {path: "${{ inputs. }}"}}
          inSync: "observed.a =="
          start: each
          states:
            each:
              foreach:
                items: "[1, 2"
                do:
                  - {plugin: t.write, with: {path: "/tmp/${{ item + }}", content: c}}
              transitions:
                - {to: done, when: "inputs.x >"}
                - {to: wait}
            wait:
              transitions:
                - to: done
                  poll: {plugin: t.read, with: {path: p}, until: "result."}
                - {to: done, subscribe: {plugin: t.events, with: {subject: s}, match: "(("}}
            done: {end: success}
        """
    )
    assert sorted(p.line for p in problems) == [7, 8, 13, 15, 17, 22, 23]
    assert all(p.message.startswith("invalid CEL") for p in problems)


def test_unknown_states_in_start_transitions_and_on_delete_have_suggestions() -> None:
    problems = check(
        """\
          start: begin
          onDelete: clean
          states:
            began:
              transitions: [{to: don}]
            done: {end: success}
        """
    )
    by_line = {p.line: p.message for p in problems if p.severity == "error"}
    assert "unknown state 'begin'; did you mean 'began'?" in by_line[6]
    assert "unknown state 'clean'" in by_line[7]
    assert "unknown state 'don'; did you mean 'done'?" in by_line[10]


def test_unreachable_state_is_a_warning_and_no_way_out_is_an_error() -> None:
    problems = check(
        """\
          start: a
          states:
            a:
              transitions: [{to: b}]
            b:
              transitions: [{to: a, after: 1s}]
            orphan:
              transitions: [{to: done}]
            done: {end: success}
        """
    )
    assert sorted(where(problems)) == [
        (8, "error"),
        (10, "error"),
        (12, "warning"),
        (14, "warning"),
    ]
    assert "'done' is unreachable" in next(p for p in problems if p.line == 14).message


def test_on_delete_state_counts_as_reachable() -> None:
    problems = check(
        """\
          start: done
          onDelete: cleanup
          states:
            cleanup: {transitions: [{to: done}]}
            done: {end: success}
        """
    )
    assert problems == []


def test_action_state_without_failure_transition_warns_and_fails_under_strict() -> None:
    body = """\
      start: a
      states:
        a:
          action: {plugin: t.write, with: {path: p, content: c}}
          next: done
        done: {end: success}
    """
    [warning] = check(body)
    assert (warning.line, warning.column, warning.severity) == (8, 5, "warning")
    assert "no failure transition" in warning.message
    [error] = check(body, strict=True)
    assert error.severity == "error"


def test_unknown_on_names_are_errors_but_plugin_declared_names_are_accepted() -> None:
    problems = check(
        """\
          start: a
          states:
            a:
              action: {plugin: t.write, with: {path: p, content: c}}
              transitions:
                - {to: done, on: [Locked, HTTP5xx]}
                - {to: done, on: Timout}
                - {to: done, on: error}
            done: {end: success}
        """
    )
    [problem] = problems
    assert problem.line == 12 and "unknown outcome 'Timout'" in problem.message
    assert "did you mean 'Timeout'?" in problem.message


def test_secrets_outside_with_and_undeclared_secrets_are_errors() -> None:
    problems = check(
        """\
          inputs: {copy: "${{ secrets.token }}"}
          secrets: {token: "env:TOKEN"}
          observe: {plugin: t.read, with: {path: "${{ secrets.tokn }}"}}
          inSync: "observed.value == secrets.token"
          start: a
          states:
            a:
              transitions:
                - {to: done, when: "secrets['token'] == 'x'"}
                - {to: done}
            done: {end: success}
        """
    )
    by_line = {p.line: p.message for p in problems}
    assert set(by_line) == {6, 8, 9, 14}
    assert "only be used inside an action's with" in by_line[6]
    assert "'tokn' is not declared" in by_line[8] and "did you mean 'token'" in by_line[8]
    assert "only be used inside" in by_line[9] and "only be used inside" in by_line[14]


def test_clear_text_credentials_are_errors_that_never_echo_the_value() -> None:
    problems = check(
        """\
          inputs:
            db_password: s3cr3t-value
            apiToken: "${{ inputs.other }}"
            aws: AKIAABCDEFGHIJKLMNOP
            url: "postgres://app:pa55word@db/app"
            safe_url: "postgres://app:${{ secrets.pw }}@db/app"
            key: "-----BEGIN RSA PRIVATE KEY-----\\nabc"
            gh: ghp_abcdefghijklmnopqrstuvwxyz0123456789
            nested: {deep: [{token: 1234}]}
          start: a
          states:
            a:
              action: {plugin: t.write, with: {path: p, content: "postgres://u:hunter2@h/d"}}
              next: done
              onError: done
            done: {end: success}
        """
    )
    by_line = {p.line: p.message for p in problems if "secret reference" in p.message}
    assert set(by_line) == {7, 9, 10, 12, 13, 14, 18}
    for message in by_line.values():
        for value in ("s3cr3t", "AKIA", "pa55word", "hunter2", "ghp_", "1234"):
            assert value not in message
    assert "spec.secrets" in by_line[7] and "${{ secrets.NAME }}" in by_line[7]
    # the templated secrets reference outside `with:` is its own problem
    assert any("only be used inside" in p.message for p in problems if p.line == 11)


def test_find_credentials_ignores_ordinary_keys_and_values() -> None:
    clean = {"user": "app", "passthrough": True, "token_url": "https://x/token", "count": 3}
    assert list(find_credentials(clean)) == []


def test_all_problems_are_reported_not_just_the_first() -> None:
    problems = check(
        """\
          start: a
          states:
            a:
              action: {plugin: nope, with: {}}
              transitions:
                - {to: nowhere, on: Bogus}
                - {to: done, when: "1 +"}
            done: {end: success}
        """
    )
    assert len([p for p in problems if p.severity == "error"]) >= 4
    assert all(p.workflow == "demo" and p.path == "w.yaml" for p in problems)


def write(tmp_path: Path, name: str, depends: list[str]) -> None:
    body = f"dependsOn: {depends}\nstart: done\nstates: {{done: {{end: success}}}}\n"
    text = HEAD.format(name=name) + indent(body, "  ")
    (tmp_path / f"{name}.yaml").write_text(text)


def test_depends_on_unknown_names_and_cycles_across_the_snapshot(tmp_path: Path) -> None:
    write(tmp_path, "a", ["b"])
    write(tmp_path, "b", ["c"])
    write(tmp_path, "c", ["a"])
    write(tmp_path, "d", ["a", "missing-one"])
    write(tmp_path, "e", ["e"])
    snapshot = load_tree(tmp_path)
    assert snapshot.problems == []
    problems = validate_snapshot(snapshot, REGISTRY)
    cycles = sorted((p.path, p.message) for p in problems if "cycle" in p.message)
    assert cycles == [
        ("a.yaml", "dependsOn cycle: a -> b -> c -> a"),
        ("b.yaml", "dependsOn cycle: a -> b -> c -> a"),
        ("c.yaml", "dependsOn cycle: a -> b -> c -> a"),
        ("e.yaml", "dependsOn cycle: e -> e"),
    ]
    [unknown] = [p for p in problems if "unknown workflow" in p.message]
    assert unknown.path == "d.yaml" and unknown.line == 6 and unknown.workflow == "d"


def test_depends_on_an_invalid_workflow_is_not_unknown(tmp_path: Path) -> None:
    write(tmp_path, "a", ["b"])
    (tmp_path / "b.yaml").write_text(HEAD.format(name="b") + "  start: x\n")
    snapshot = load_tree(tmp_path)
    assert "b" in snapshot.invalid
    assert validate_snapshot(snapshot, REGISTRY) == []


def test_validate_snapshot_covers_every_workflow() -> None:
    files = {
        "a.yaml": load_text(
            HEAD.format(name="a") + "  start: x\n  states: {y: {end: success}}\n", path="a.yaml"
        ),
        "b.yaml": load_text(
            HEAD.format(name="b") + "  start: z\n  states: {y: {end: success}}\n", path="b.yaml"
        ),
    }
    problems = validate_snapshot(Snapshot.from_files("r", files), REGISTRY)
    assert sorted(p.workflow or "" for p in problems if "unknown state" in p.message) == [
        "a",
        "b",
    ]


def test_inline_tests_must_mock_known_plugins_errors_and_states() -> None:
    text = HEAD.format(name="demo") + dedent(
        """\
          start: a
          states:
            a:
              action: {plugin: t.write, with: {path: p, content: c}}
              next: done
              onError: done
            done: {end: success}
        tests:
          - name: happy
            mocks: {t.write: [{changed: true}], t.wrte: [{}]}
            expect: {path: [a, don], end: success}
          - name: sad
            mocks:
              t.write: [{error: Lockd}, {error: Locked}]
            expect: {path: [a, done]}
        """
    )
    result = load_text(text, path="w.yaml")
    assert result.problems == []
    problems = validate_workflow(result.workflows[0], REGISTRY)
    by_line = {p.line: p.message for p in problems}
    assert set(by_line) == {15, 16, 19}
    assert "unknown plugin 't.wrte'" in by_line[15]
    assert "unknown state 'don'" in by_line[16] and "'done'" in by_line[16]
    assert "unknown error 'Lockd'" in by_line[19] and "'Locked'" in by_line[19]


NAMES = ["a", "b", "c", "d", "e", "f"]


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(NAMES),
        st.lists(st.sampled_from([*NAMES, "zz"]), max_size=4, unique=True),
        min_size=1,
    )
)
def test_dependency_cycles_are_reported_exactly_when_the_graph_has_one(
    graph: dict[str, list[str]],
) -> None:
    files = {}
    for name, deps in graph.items():
        body = f"dependsOn: {deps}\nstart: done\nstates: {{done: {{end: success}}}}\n"
        text = HEAD.format(name=name) + indent(body, "  ")
        files[f"{name}.yaml"] = load_text(text, path=f"{name}.yaml")
    problems = validate_snapshot(Snapshot.from_files("r", files), REGISTRY)
    reported = [p for p in problems if "cycle" in p.message]
    known = {n: [d for d in deps if d in graph] for n, deps in graph.items()}
    try:
        list(TopologicalSorter(known).static_order())
        acyclic = True
    except CycleError:
        acyclic = False
    assert acyclic == (reported == [])
    for problem in reported:
        cycle = problem.message.removeprefix("dependsOn cycle: ").split(" -> ")
        assert cycle[0] == cycle[-1]
        for src, dst in itertools.pairwise(cycle):
            assert dst in known[src]
    unknown = [p for p in problems if "unknown workflow" in p.message]
    assert len(unknown) == sum(1 for deps in graph.values() for d in deps if d not in graph)


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["s0", "s1", "s2", "s3", "s4"]),
        st.one_of(
            st.sampled_from(["end-success", "end-failure"]),
            st.lists(st.sampled_from(["s0", "s1", "s2", "s3", "s4", "nope"]), min_size=1),
        ),
        min_size=1,
    ),
    st.sampled_from(["s0", "s1", "nope"]),
)
def test_any_state_graph_gets_positioned_problems_and_never_an_exception(
    states: dict[str, Any], start: str
) -> None:
    spec_states: dict[str, Any] = {}
    for name, shape in states.items():
        if isinstance(shape, str):
            spec_states[name] = {"end": shape.removeprefix("end-")}
        else:
            spec_states[name] = {"transitions": [{"to": t} for t in shape]}
    body = {"start": start, "states": spec_states}
    text = HEAD.format(name="g") + indent(yaml.safe_dump(body), "  ")
    [lw] = load_text(text, path="g.yaml").workflows
    problems = validate_workflow(lw, REGISTRY)
    for problem in problems:
        assert problem.line > 5 and problem.column >= 1
    ends = {n for n, s in spec_states.items() if "end" in s}
    if not ends:
        assert any("no path to an end state" in p.message for p in problems)


def test_now_in_desired_state_is_a_warning_at_its_line() -> None:
    problems = check(
        """\
          inputs: {stamp: "${{ string(now()) }}"}
          desired: {content: "written at ${{ now() }}"}
          observe: {plugin: t.read, with: {path: /tmp/x}}
          start: write
          states:
            write:
              action: {plugin: t.write, with: {path: /tmp/x, content: "${{ string(now()) }}"}}
              transitions: [{to: done}]
            done: {end: success}
        """
    )

    assert where(problems) == [(6, "warning"), (7, "warning")]
    assert all("never stay in sync" in p.message for p in problems)


def test_now_in_in_sync_and_in_actions_is_not_a_warning() -> None:
    problems = check(
        """\
          observe: {plugin: t.read, with: {path: /tmp/x}}
          inSync: "timestamp(observed.expires) > now()"
          start: write
          states:
            write:
              action: {plugin: t.write, with: {path: /tmp/x, content: "${{ string(now()) }}"}}
              transitions: [{to: done}]
            done: {end: success}
        """
    )

    assert problems == []


def test_extension_functions_validate_like_standard_ones() -> None:
    problems = check(
        """\
          inputs: {name: " Web ", hosts: [a, b]}
          observe: {plugin: t.read, with: {path: "${{ inputs.name.trim().lowerAscii() }}"}}
          inSync: "observed.content.split('\\\\n').exists(l, l.indexOf('ok') >= 0)"
          start: write
          states:
            write:
              action:
                plugin: t.write
                with: {path: /tmp/x, content: "${{ inputs.hosts.join(',').upperAscii() }}"}
              transitions: [{to: done}]
            done: {end: success}
        """
    )

    assert problems == []
