"""The state diagram: every state and transition drawn, labelled, highlighted, and valid text."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pydot
import pytest

from reconciler.config.models import Workflow
from reconciler.engine.graph import (
    build_diagram,
    mermaid_escape,
    short_duration,
    to_dot,
    to_mermaid,
)


def make(states: dict[str, Any], *, start: str | None = None) -> Workflow:
    return Workflow.model_validate(
        {
            "apiVersion": "reconciler/v1",
            "kind": "Workflow",
            "metadata": {"name": "app-database"},
            "spec": {"start": start or next(iter(states)), "states": states},
        }
    )


# The format guide's example: every kind of condition appears once.
REPO_ROOT = Path(__file__).resolve().parents[3]

DESIGN_EXAMPLE = make(
    {
        "create": {
            "do": [{"plugin": "sql.exec", "with": {"sql": "create database app"}}],
            "retry": {"attempts": 5},
            "transitions": [
                {"to": "wait_ready", "on": "success"},
                {"to": "cleanup", "on": ["Conflict", "Timeout"]},
                {"to": "failed", "on": "error"},
            ],
        },
        "wait_ready": {
            "transitions": [
                {
                    "to": "done",
                    "poll": {
                        "plugin": "sql.query",
                        "every": "5s",
                        "until": "size(result.rows) == 1",
                    },
                },
                {
                    "to": "done",
                    "subscribe": {
                        "plugin": "nats.subscribe",
                        "match": 'message.data.db == "app"',
                    },
                },
                {"to": "failed", "after": "10m"},
            ],
        },
        "cleanup": {
            "action": {"plugin": "sql.exec", "with": {"sql": "drop database app"}},
            "next": "choose",
        },
        "choose": {
            "transitions": [
                {"to": "done", "when": "outputs.x > 1 ? true : false"},
                {"to": "failed"},
            ]
        },
        "done": {"end": "success"},
        "failed": {"end": "failure"},
    }
)

EXPECTED_LABELS = {
    ("create", "wait_ready", "success"),
    ("create", "cleanup", "Conflict, Timeout"),
    ("create", "failed", "error"),
    ("wait_ready", "done", "poll sql.query every 5s until size(result.rows) == 1"),
    ("wait_ready", "done", 'subscribe nats.subscribe match message.data.db == "app"'),
    ("wait_ready", "failed", "after 10m"),
    ("cleanup", "choose", "success"),
    ("choose", "done", "when outputs.x > 1 ? true : false"),
    ("choose", "failed", "default"),
}


# --- a checker for the subset of Mermaid's stateDiagram grammar we emit ----------------------
# Token rules taken from Mermaid's lexer: an id is [^:\n\s\-\{]+, a description after ':' is
# [^:\n;]+, a quoted state description is [^"]*, `%%` starts a comment anywhere, and any line
# containing "direction TB|BT|RL|LR" is a direction statement.
_ID = r"[^:\s\-\{]+"
_END = r"(?:\[\*\]|" + _ID + r")"
_MERMAID_LINE = re.compile(
    "|".join(
        [
            r"%%.*",
            r"classDef [A-Za-z_][A-Za-z0-9_]* [^;\n]+",
            r'state "[^"\n]*" as [A-Za-z0-9_]+',
            _ID + r" : [^:\n;]+",
            _END + r" --> " + _END + r"(?: : [^:\n;]+)?",
            r"class " + _ID + r"(?:," + _ID + r")* [A-Za-z_][A-Za-z0-9_]*",
        ]
    )
)


def assert_valid_mermaid(text: str) -> dict[str, str]:
    """Check every line against the grammar; return declared ids → displayed names."""
    lines = text.splitlines()
    assert lines[0] == "stateDiagram-v2"
    declared: dict[str, str] = {}
    used: set[str] = set()
    for raw in lines[1:]:
        # like Mermaid's encodeEntities(): entity codes become placeholders before parsing
        line = re.sub(r"#\w+;", "\N{LATIN SMALL LIGATURE FL}\N{DEGREE SIGN}", raw.strip())
        assert _MERMAID_LINE.fullmatch(line), f"not valid stateDiagram-v2: {line!r}"
        assert not re.search(r"direction\s+(TB|BT|RL|LR)", line, re.IGNORECASE) or line.startswith(
            "%%"
        )
        if not line.startswith("%%"):
            assert "%%" not in line, line
        if m := re.fullmatch(r'state "([^"]*)" as (\S+)', line):
            assert m.group(2) not in declared, f"duplicate id {m.group(2)}"
            declared[m.group(2)] = m.group(1)
        elif m := re.fullmatch(r"(\S+) --> (\S+)(?: : .*)?", line):
            used.update(x for x in m.groups() if x != "[*]")
    assert used <= set(declared), f"undeclared ids: {used - set(declared)}"
    return declared


def mermaid_edges(text: str) -> set[tuple[str, str, str]]:
    ids = {
        m.group(2): m.group(1) for m in re.finditer(r'^\s*state "([^"]*)" as (\S+)$', text, re.M)
    }
    edges = set()
    for m in re.finditer(r"^\s*(\S+) --> (\S+) : (.*)$", text, re.M):
        label = m.group(3)
        for code, char in (("#58;", ":"), ("#quot;", '"'), ("#gt;", ">"), ("#35;", "#")):
            label = label.replace(code, char)
        edges.add((ids[m.group(1)], ids[m.group(2)], label))
    return edges


# --- what is drawn ---------------------------------------------------------------------------


def test_every_transition_is_labelled_with_its_condition() -> None:
    diagram = build_diagram(DESIGN_EXAMPLE)
    assert {(e.source, e.target, e.label) for e in diagram.edges} == EXPECTED_LABELS
    assert {n.name for n in diagram.nodes} == set(DESIGN_EXAMPLE.spec.states)


def test_mermaid_draws_every_state_start_marker_and_labelled_transition() -> None:
    text = to_mermaid(DESIGN_EXAMPLE)
    declared = assert_valid_mermaid(text)
    assert set(declared.values()) == set(DESIGN_EXAMPLE.spec.states)
    assert mermaid_edges(text) == EXPECTED_LABELS
    start_id = next(i for i, n in declared.items() if n == "create")
    assert f"[*] --> {start_id}" in text


def test_mermaid_end_states_lead_to_the_end_marker_with_their_outcome_class() -> None:
    text = to_mermaid(DESIGN_EXAMPLE)
    assert "    s_done --> [*]" in text
    assert "    s_failed --> [*]" in text
    assert re.search(r"^    class s_done success$", text, re.M)
    assert re.search(r"^    class s_failed failure$", text, re.M)
    assert "s_done : end#58; success" in text


def test_mermaid_highlights_current_state_and_styles_visited_ones() -> None:
    text = to_mermaid(DESIGN_EXAMPLE, current="wait_ready", visited=["create", "wait_ready"])
    assert_valid_mermaid(text)
    assert re.search(r"^    class s_wait_ready current$", text, re.M)
    assert re.search(r"^    class s_create visited$", text, re.M)
    assert "classDef current " in text and "classDef visited " in text


def test_state_detail_names_the_plugins_and_retry() -> None:
    text = to_mermaid(DESIGN_EXAMPLE)
    assert "s_create : sql.exec / retry x5" in text


def test_mermaid_ids_are_sanitised_unique_and_clear_of_keywords() -> None:
    wf = make(
        {
            "end": {"next": "a-b"},
            "a-b": {"next": "a_b"},
            "a_b": {"next": "state"},
            "state": {"end": "success"},
        }
    )
    declared = assert_valid_mermaid(to_mermaid(wf))
    assert sorted(declared.values()) == ["a-b", "a_b", "end", "state"]
    assert all(re.fullmatch(r"s_[A-Za-z0-9_]+", i) for i in declared)
    assert len(declared) == 4


@pytest.mark.parametrize(
    "expr",
    [
        'inputs.mode == "a:b; c" && inputs.n > 2',
        "inputs.x %% 2 == 0 || {'k': 1}.k == 1",
        "inputs.direction LR == 'x' # not a comment",
        "a < b\n  && c >= d",
        "`x` | y",
    ],
)
def test_mermaid_labels_with_awkward_cel_stay_one_valid_line(expr: str) -> None:
    wf = make(
        {"a": {"transitions": [{"to": "b", "when": expr}, {"to": "b"}]}, "b": {"end": "success"}}
    )
    text = to_mermaid(wf)
    assert_valid_mermaid(text)
    label = mermaid_escape(expr)
    assert f"s_a --> s_b : when {label}" in text
    # decoding the entity codes gives back the expression (whitespace folded to one line)
    decoded = re.sub(r"#(\d+);", lambda m: chr(int(m.group(1))), label)
    for code, char in (("#quot;", '"'), ("#lt;", "<"), ("#gt;", ">"), ("#amp;", "&")):
        decoded = decoded.replace(code, char)
    assert decoded == " ".join(expr.split())


def test_unknown_target_is_drawn_as_a_missing_state_not_an_error() -> None:
    wf = make({"a": {"next": "nowhere"}, "b": {"end": "success"}})
    diagram = build_diagram(wf)
    assert [(n.name, n.kind) for n in diagram.nodes if n.kind == "missing"] == [
        ("nowhere", "missing")
    ]
    text = to_mermaid(wf)
    assert_valid_mermaid(text)
    assert re.search(r"^    class s_nowhere missing$", text, re.M)
    assert pydot.graph_from_dot_data(to_dot(wf))


def test_names_that_are_not_states_are_ignored_in_current_and_visited() -> None:
    diagram = build_diagram(DESIGN_EXAMPLE, current="gone", visited=["gone", "create"])
    assert not any(n.current for n in diagram.nodes)
    assert [n.name for n in diagram.nodes if n.visited] == ["create"]


def test_output_is_the_same_whatever_the_hash_seed() -> None:
    # Within one process set and hash orders never change, so comparing two calls proves
    # nothing: render in processes with different PYTHONHASHSEED and compare those.
    script = (
        "from tests.unit.engine.test_graph import DESIGN_EXAMPLE\n"
        "from reconciler.engine.graph import to_dot, to_mermaid\n"
        "print(to_mermaid(DESIGN_EXAMPLE, current='create'))\n"
        "print(to_dot(DESIGN_EXAMPLE))\n"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert outputs == {
        to_mermaid(DESIGN_EXAMPLE, current="create") + "\n" + to_dot(DESIGN_EXAMPLE) + "\n"
    }


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(600, "10m"), (5400, "1h30m"), (0.5, "500ms"), (86400 + 2, "1d2s"), (0, "0s")],
)
def test_durations_are_written_like_in_yaml(seconds: float, text: str) -> None:
    assert short_duration(timedelta(seconds=seconds)) == text


# --- DOT -------------------------------------------------------------------------------------


def parse_dot(text: str) -> pydot.Dot:
    graphs = pydot.graph_from_dot_data(text)
    assert graphs is not None and len(graphs) == 1, "pydot could not parse the DOT text"
    return graphs[0]


def unquote(value: str | None) -> str:
    assert value is not None
    if value.startswith('"') and value.endswith('"'):
        value = value[1:-1]
    return value.replace('\\"', '"').replace("\\\\", "\\")


def test_dot_parses_and_has_every_state_and_labelled_transition() -> None:
    graph = parse_dot(to_dot(DESIGN_EXAMPLE))
    names = {unquote(n.get_name()) for n in graph.get_nodes()} - {"node", "edge"}
    assert names == set(DESIGN_EXAMPLE.spec.states) | {"[start]"}
    edges = {
        (unquote(e.get_source()), unquote(e.get_destination()), unquote(e.get("label")))
        for e in graph.get_edges()
        if unquote(e.get_source()) != "[start]"
    }
    assert edges == EXPECTED_LABELS
    start = [e for e in graph.get_edges() if unquote(e.get_source()) == "[start]"]
    assert [unquote(e.get_destination()) for e in start] == ["create"]


def node_attrs(graph: pydot.Dot, name: str) -> dict[str, str]:
    (node,) = graph.get_node(f'"{name}"')
    return {k: unquote(v) for k, v in node.get_attributes().items()}


def test_dot_end_states_are_shaped_by_outcome_and_current_is_highlighted() -> None:
    graph = parse_dot(
        to_dot(DESIGN_EXAMPLE, current="wait_ready", visited=["create", "wait_ready"])
    )
    assert node_attrs(graph, "done")["shape"] == "doublecircle"
    assert node_attrs(graph, "failed")["shape"] == "doubleoctagon"
    assert node_attrs(graph, "[start]")["shape"] == "point"
    current = node_attrs(graph, "wait_ready")
    assert current["penwidth"] == "3" and "bold" in current["style"]
    visited = node_attrs(graph, "create")
    assert visited["fillcolor"] == "#e3f2fd"
    plain = node_attrs(graph, "cleanup")
    assert plain["fillcolor"] == "#ffffff"
    taken = [
        e
        for e in graph.get_edges()
        if (unquote(e.get_source()), unquote(e.get_destination())) == ("create", "wait_ready")
    ]
    assert taken[0].get("penwidth") == "2.5"


def test_dot_escapes_quotes_backslashes_and_newlines_in_labels() -> None:
    expr = 'inputs.s == "a\\"b" &&\n inputs.t.matches("^x\\\\d$")'
    wf = make(
        {"a": {"transitions": [{"to": "b", "when": expr}, {"to": "b"}]}, "b": {"end": "success"}}
    )
    graph = parse_dot(to_dot(wf))
    labels = {unquote(e.get("label")) for e in graph.get_edges() if e.get("label")}
    assert "when " + " ".join(expr.split()) in labels


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz `dot` binary not installed")
def test_graphviz_dot_accepts_the_output() -> None:
    text = to_dot(DESIGN_EXAMPLE, current="create", visited=["create"])
    done = subprocess.run(
        ["dot", "-Tsvg"], input=text, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "<svg" in done.stdout and "wait_ready" in done.stdout


def test_on_delete_state_gets_its_own_labelled_entry() -> None:
    wf = Workflow.model_validate(
        {
            **DESIGN_EXAMPLE.model_dump(by_alias=True),
            "spec": {**DESIGN_EXAMPLE.spec.model_dump(by_alias=True), "onDelete": "cleanup"},
        }
    )
    text = to_mermaid(wf)
    assert_valid_mermaid(text)
    assert "    [*] --> s_cleanup : onDelete" in text
    assert "    [*] --> s_create\n" in text
    graph = parse_dot(to_dot(wf))
    entries = {
        (unquote(e.get_source()), unquote(e.get_destination()), unquote(e.get("label") or '""'))
        for e in graph.get_edges()
        if unquote(e.get_source()).startswith("[")
    }
    assert entries == {("[start]", "create", ""), ("[deleted]", "cleanup", "onDelete")}
