"""A workflow's state machine as a diagram: Mermaid ``stateDiagram-v2`` or Graphviz DOT.

A read-only view: it takes a validated :class:`~reconciler.config.models.Workflow` from the snapshot
(:mod:`reconciler.config.loader`) and, optionally, where a run is and where it has been (the
``current_state`` and the ``state_entered`` entries of a run in the store / journal,
:mod:`reconciler.engine.journal`). ``reconciler graph`` (:mod:`reconciler.cli.graph`), the HTTP
API and the web page call these pure functions; nothing here does I/O.

What callers may rely on:

* every state is drawn, plus a start marker pointing at ``spec.start`` (and a second, labelled
  ``onDelete``, pointing at ``spec.onDelete`` when there is one); end states are drawn
  differently for ``success`` and ``failure``; a transition naming a state that does not exist
  (an invalid workflow) is still drawn, to a node styled as missing, so a broken file can be looked
  at before it is fixed;
* every transition is an edge labelled with its condition, in the words the YAML uses:
  ``success``, ``error``, ``Conflict, Timeout`` (``on:`` names), ``when <CEL>``, ``after 10m``,
  ``poll <plugin> until <CEL>``, ``subscribe <plugin> match <CEL>``, ``approval``, ``default``;
* ``current`` (the state a run is in) is highlighted and ``visited`` (the states a run went
  through, in order) are styled; names that are not states of the workflow are ignored, because a
  run of an older revision may have visited states that no longer exist;
* the text is valid for its language: Mermaid ids are sanitised and unique, labels are escaped
  with Mermaid entity codes; DOT ids and labels are quoted and escaped. The output is
  deterministic (same input, same text), so it can be diffed and cached.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from itertools import pairwise
from typing import Literal

from reconciler.config.models import State, Transition, Workflow

NodeKind = Literal["state", "success", "failure", "missing"]
"""How a node is drawn: an ordinary state, an end state of either outcome, or an unknown target."""

EdgeKind = Literal["success", "error", "when", "race", "default"]
"""How an edge is drawn: by the family of its condition."""


@dataclass(frozen=True)
class Node:
    """One state of the diagram. ``detail`` is a short summary of its work (plugins, retry)."""

    name: str
    kind: NodeKind
    detail: str
    current: bool
    visited: bool


@dataclass(frozen=True)
class Edge:
    """One transition. ``index`` is its position in the source state's list (its priority)."""

    source: str
    target: str
    label: str
    kind: EdgeKind
    index: int
    on_path: bool


@dataclass(frozen=True)
class Diagram:
    """The renderer-neutral model both :func:`to_mermaid` and :func:`to_dot` draw."""

    name: str
    start: str
    on_delete: str | None
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]


def short_duration(value: timedelta) -> str:
    """``timedelta(minutes=90)`` → ``"1h30m"``: the way durations are written in YAML."""
    millis = round(value.total_seconds() * 1000)
    if millis == 0:
        return "0s"
    parts: list[str] = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    if millis:
        parts.append(f"{millis}ms")
    return "".join(parts)


def transition_label(transition: Transition) -> str:
    """The condition of a transition in the words of the workflow format (see module doc)."""
    kind = transition.kind
    if kind == "on" and transition.on is not None:
        return ", ".join(transition.on)
    if kind == "when" and transition.when is not None:
        return f"when {_one_line(transition.when)}"
    if kind == "after" and transition.after is not None:
        return f"after {short_duration(transition.after)}"
    if kind == "poll" and transition.poll is not None:
        poll = transition.poll
        return (
            f"poll {poll.plugin} every {short_duration(poll.every)} until {_one_line(poll.until)}"
        )
    if kind == "subscribe" and transition.subscribe is not None:
        sub = transition.subscribe
        match = f" match {_one_line(sub.match)}" if sub.match else ""
        return f"subscribe {sub.plugin}{match}"
    if kind == "approval":
        return "approval"
    return "default"


def _edge_kind(transition: Transition) -> EdgeKind:
    kind = transition.kind
    if kind == "on":
        return "success" if transition.on == ["success"] else "error"
    if kind in ("after", "poll", "subscribe", "approval"):
        return "race"
    if kind == "when":
        return "when"
    return "default"


def state_detail(state: State) -> str:
    """A one-line summary of a state's work: its plugins in order, foreach and retry."""
    if state.end is not None:
        return f"end: {state.end}"
    parts: list[str] = []
    if state.foreach is not None:
        plugins = ", ".join(a.plugin for a in state.foreach.do)
        parts.append(f"foreach {plugins}")
    elif state.do:
        parts.append(", ".join(a.plugin for a in state.do))
    if state.retry is not None and state.retry.attempts > 1:
        parts.append(f"retry x{state.retry.attempts}")
    if state.timeout is not None:
        parts.append(f"timeout {short_duration(state.timeout)}")
    return " / ".join(parts)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def build_diagram(
    workflow: Workflow, *, current: str | None = None, visited: Sequence[str] = ()
) -> Diagram:
    """The renderer-neutral diagram of ``workflow`` with a run's position, if any."""
    states = workflow.spec.states
    known = set(states)
    seen = {name for name in visited if name in known}
    path_pairs = set(pairwise(visited))
    nodes: list[Node] = []
    for name, state in states.items():
        kind: NodeKind = state.end if state.end is not None else "state"
        nodes.append(
            Node(
                name=name,
                kind=kind,
                detail=state_detail(state),
                current=name == current,
                visited=name in seen,
            )
        )
    missing: list[str] = []
    edges: list[Edge] = []
    for name, state in states.items():
        for index, transition in enumerate(state.transitions):
            if transition.to not in known and transition.to not in missing:
                missing.append(transition.to)
            edges.append(
                Edge(
                    source=name,
                    target=transition.to,
                    label=transition_label(transition),
                    kind=_edge_kind(transition),
                    index=index,
                    on_path=(name, transition.to) in path_pairs,
                )
            )
    start = workflow.spec.start
    on_delete = workflow.spec.on_delete
    for entry in (start, on_delete):
        if entry is not None and entry not in known and entry not in missing:
            missing.append(entry)
    for name in missing:
        nodes.append(
            Node(name=name, kind="missing", detail="unknown state", current=False, visited=False)
        )
    return Diagram(
        name=workflow.name,
        start=start,
        on_delete=on_delete,
        nodes=tuple(nodes),
        edges=tuple(edges),
    )


# --- Mermaid ---------------------------------------------------------------------------------

_MERMAID_CLASSES = {
    "success": "fill:#e8f5e9,stroke:#2e7d32,stroke-width:2px,color:#1b5e20",
    "failure": "fill:#ffebee,stroke:#c62828,stroke-width:2px,color:#b71c1c",
    "missing": "fill:#fff,stroke:#c62828,stroke-width:1px,stroke-dasharray:4 3,color:#c62828",
    "visited": "fill:#e3f2fd,stroke:#1565c0,stroke-width:2px",
    "current": "fill:#fff59d,stroke:#f57f17,stroke-width:4px,font-weight:bold",
}

# Characters that end or confuse a Mermaid token, as entity codes. Mermaid swaps every
# ``#code;`` for a placeholder before it parses and decodes it when it draws, so the ``;`` of a
# code does not end a label. One pass (str.translate), so codes are never escaped twice.
_MERMAID_ENTITIES = str.maketrans(
    {
        "#": "#35;",
        ":": "#58;",
        ";": "#59;",
        '"': "#quot;",
        "<": "#lt;",
        ">": "#gt;",
        "&": "#amp;",
        "%": "#37;",
        "{": "#123;",
        "}": "#125;",
        "|": "#124;",
        "`": "#96;",
    }
)
# Mermaid's lexer treats any line containing "direction TB|BT|RL|LR" as a direction statement.
_MERMAID_DIRECTION_RE = re.compile(r"(direction)\s+(?=(TB|BT|RL|LR)\b)", re.IGNORECASE)


def mermaid_escape(text: str) -> str:
    """Escape free text for a Mermaid label: one line, no token-ending characters."""
    out = _one_line(text).translate(_MERMAID_ENTITIES)
    return _MERMAID_DIRECTION_RE.sub(r"\1#32;", out)


def _mermaid_ids(names: Sequence[str]) -> dict[str, str]:
    """Unique ids of ``[A-Za-z0-9_]`` with a prefix that keeps clear of Mermaid keywords."""
    ids: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        base = "s_" + re.sub(r"[^A-Za-z0-9_]", "_", name)
        candidate, n = base, 2
        while candidate in taken:
            candidate, n = f"{base}_{n}", n + 1
        taken.add(candidate)
        ids[name] = candidate
    return ids


def to_mermaid(
    workflow: Workflow, *, current: str | None = None, visited: Sequence[str] = ()
) -> str:
    """Mermaid ``stateDiagram-v2`` text of ``workflow`` (see the module doc for the promises).

    End states lead to Mermaid's end marker ``[*]`` and carry a ``success``/``failure`` class;
    ``current`` gets the ``current`` class, ``visited`` states the ``visited`` class.
    """
    diagram = build_diagram(workflow, current=current, visited=visited)
    ids = _mermaid_ids([node.name for node in diagram.nodes])
    lines = ["stateDiagram-v2", f"    %% workflow {mermaid_escape(diagram.name)}"]
    for name, style in _MERMAID_CLASSES.items():
        lines.append(f"    classDef {name} {style}")
    for node in diagram.nodes:
        lines.append(f'    state "{mermaid_escape(node.name)}" as {ids[node.name]}')
        if node.detail:
            lines.append(f"    {ids[node.name]} : {mermaid_escape(node.detail)}")
    lines.append(f"    [*] --> {ids[diagram.start]}")
    if diagram.on_delete is not None:
        lines.append(f"    [*] --> {ids[diagram.on_delete]} : onDelete")
    for edge in diagram.edges:
        lines.append(
            f"    {ids[edge.source]} --> {ids[edge.target]} : {mermaid_escape(edge.label)}"
        )
    for node in diagram.nodes:
        if node.kind in ("success", "failure"):
            lines.append(f"    {ids[node.name]} --> [*]")
    for css in ("success", "failure", "missing", "visited", "current"):
        members = [ids[n.name] for n in diagram.nodes if _has_class(n, css)]
        if members:
            lines.append(f"    class {','.join(members)} {css}")
    return "\n".join(lines) + "\n"


def _has_class(node: Node, css: str) -> bool:
    if css == "current":
        return node.current
    if css == "visited":
        return node.visited and not node.current
    return node.kind == css


# --- DOT -------------------------------------------------------------------------------------

_DOT_START_ID = "[start]"  # brackets cannot occur in a state name, so this never collides
_DOT_DELETE_ID = "[deleted]"
_DOT_EDGE_STYLE: dict[EdgeKind, str] = {
    "success": 'color="#2e7d32"',
    "error": 'color="#c62828", fontcolor="#c62828", style=dashed',
    "when": 'color="#1565c0", fontcolor="#1565c0"',
    "race": 'color="#6a1b9a", fontcolor="#6a1b9a", style=dotted',
    "default": 'color="#424242"',
}


def dot_quote(text: str) -> str:
    """A DOT double-quoted string: backslashes and quotes escaped, newlines as ``\\n``."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    return f'"{escaped}"'


def _dot_node_attrs(node: Node) -> str:
    label = node.name if not node.detail or node.kind != "state" else f"{node.name}\n{node.detail}"
    attrs = [f"label={dot_quote(label)}"]
    styles: list[str] = []
    if node.kind == "success":
        attrs += ["shape=doublecircle", 'color="#2e7d32"']
        styles.append("filled")
        fill = "#e8f5e9"
    elif node.kind == "failure":
        attrs += ["shape=doubleoctagon", 'color="#c62828"']
        styles.append("filled")
        fill = "#ffebee"
    elif node.kind == "missing":
        attrs += ["shape=box", 'color="#c62828"', 'fontcolor="#c62828"']
        styles.append("dashed")
        fill = ""
    else:
        attrs.append("shape=box")
        styles += ["rounded", "filled"]
        fill = "#ffffff"
    if node.current:
        fill = "#fff59d"
        attrs += ["penwidth=3", 'color="#f57f17"']
        styles += ["filled", "bold"]
    elif node.visited:
        fill = "#e3f2fd"
        attrs.append("penwidth=2")
        styles.append("filled")
    if fill:
        attrs.append(f'fillcolor="{fill}"')
    if styles:
        attrs.append(f"style={dot_quote(','.join(dict.fromkeys(styles)))}")
    return ", ".join(attrs)


def to_dot(workflow: Workflow, *, current: str | None = None, visited: Sequence[str] = ()) -> str:
    """Graphviz DOT text of ``workflow`` (see the module doc for the promises).

    The start marker is a filled point (a red one leads to ``onDelete``); success ends are double circles, failure ends double
    octagons; error routes are dashed, racing conditions dotted; ``current`` is filled yellow
    with a thick border, ``visited`` states are filled blue and the edges a run took are bold.
    """
    diagram = build_diagram(workflow, current=current, visited=visited)
    lines = [
        f"digraph {dot_quote(diagram.name)} {{",
        "    rankdir=LR;",
        '    node [fontname="Helvetica", fontsize=11];',
        '    edge [fontname="Helvetica", fontsize=9];',
        f'    {dot_quote(_DOT_START_ID)} [shape=point, width=0.2, label=""];',
    ]
    for node in diagram.nodes:
        lines.append(f"    {dot_quote(node.name)} [{_dot_node_attrs(node)}];")
    lines.append(f"    {dot_quote(_DOT_START_ID)} -> {dot_quote(diagram.start)};")
    if diagram.on_delete is not None:
        lines.append(
            f'    {dot_quote(_DOT_DELETE_ID)} [shape=point, width=0.2, label="", color="#c62828"];'
        )
        lines.append(
            f"    {dot_quote(_DOT_DELETE_ID)} -> {dot_quote(diagram.on_delete)} "
            '[label="onDelete", style=dashed, color="#c62828", fontcolor="#c62828"];'
        )
    for edge in diagram.edges:
        attrs = [f"label={dot_quote(edge.label)}", _DOT_EDGE_STYLE[edge.kind]]
        if edge.on_path:
            attrs.append("penwidth=2.5")
        lines.append(
            f"    {dot_quote(edge.source)} -> {dot_quote(edge.target)} [{', '.join(attrs)}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


__all__ = [
    "Diagram",
    "Edge",
    "Node",
    "build_diagram",
    "dot_quote",
    "mermaid_escape",
    "short_duration",
    "state_detail",
    "to_dot",
    "to_mermaid",
    "transition_label",
]
