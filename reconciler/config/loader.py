"""Workflow files → :class:`~reconciler.config.snapshot.Snapshot`, with line numbers.

Called by: :mod:`reconciler.daemon.revision` (one file's bytes, :func:`load_text`, for each
file a revision changed), ``reconciler validate``/``graph`` and the one-shot commands (a tree,
:func:`load_tree`, or a file). It parses YAML
with positions, validates each document against :class:`~reconciler.config.models.Workflow` (or,
for ``kind: Provider`` and ``kind: Alert``, against the models of
:mod:`reconciler.config.notifications`) and maps every pydantic error back to the line and
column of the offending key or value.
:mod:`reconciler.config.validate` then runs the checks a single model cannot do.

Guarantees callers rely on:

* nothing raises for bad input: every problem (YAML syntax, schema, binary or non-UTF-8 bytes,
  oversized files, alias bombs, too-deep nesting) becomes a :class:`Problem`;
* one bad file never hides another, and one bad document never hides the good documents of the
  same file (except a YAML syntax error, after which the rest of that file cannot be read);
* YAML is read with the YAML 1.2 core scalars: only ``true``/``false`` are booleans (so the
  ``on:`` key of a transition stays the string ``"on"``), no sexagesimal or implicit octal
  integers, and dates stay strings;
* input size is bounded: files above :data:`MAX_FILE_BYTES`, nesting deeper than
  :data:`MAX_DEPTH` and documents whose aliases expand beyond :data:`MAX_EXPANDED_NODES` nodes
  are refused before anything is built from them.

Parsing is CPU-bound and synchronous; async callers run :func:`load_tree` through
``asyncio.to_thread`` when the tree is large.

Speed (``bench/daemon.py`` loads 10,000 files): when PyYAML has its LibYAML binding (0.2.5 or
later, which bounds nesting in C), a file is first composed by the C parser with the same YAML 1.2
resolvers and constructors, and its positions, node count and depth are gathered in one walk.
Anything unusual (a parse error, a control character, nesting or expansion past the limits, a
non-scalar key) sends the whole file back through the pure-Python :class:`YamlLoader`, so
problems and their positions are exactly those of the pure-Python path.

Why one module of ~850 lines: the fast LibYAML path and the pure-Python path must give the same
workflows, problems and positions; they share the constructors, the limits and the error mapping,
and keeping them side by side is what keeps them equal.
"""

from __future__ import annotations

import difflib
import gc
import hashlib
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.config import models, notifications
from reconciler.config.files import (
    FileRefused,
    read_tree,
    read_workflow_file,
    refused_result,
)
from reconciler.config.models import Workflow
from reconciler.config.notifications import Alert, Provider
from reconciler.config.snapshot import (
    FileResult,
    LoadedNotification,
    LoadedWorkflow,
    Loc,
    NodePos,
    Problem,
    Snapshot,
    locate,
    workflow_digest,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_EXPANDED_NODES",
    "MAX_FILE_BYTES",
    "FileResult",
    "LoadedWorkflow",
    "Problem",
    "Snapshot",
    "YamlLoader",
    "bulk_loading",
    "cached_documents",
    "load_file",
    "load_text",
    "load_tree",
    "restore_text",
    "workflow_digest",
]

MAX_FILE_BYTES = 1024 * 1024
"""Files larger than this are refused (a workflow is a few kilobytes)."""
MAX_DEPTH = 64
"""Deepest nesting of mappings and lists accepted in a document."""
MAX_EXPANDED_NODES = 100_000
"""Most YAML nodes a document may have once every alias is expanded (stops billion laughs)."""

API_VERSION = "reconciler/v1"
KIND = "Workflow"
NOTIFICATION_KINDS: dict[str, type[Provider] | type[Alert]] = {"Provider": Provider, "Alert": Alert}
"""The other kinds of document a repository holds (see :mod:`reconciler.config.notifications`)."""


class _Refused(yaml.YAMLError):
    """A document we will not build (too deep, too big once expanded, recursive)."""

    def __init__(self, message: str, mark: yaml.Mark | None) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


class YamlLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core scalars and a nesting limit.

    Usable on its own (``yaml.load(text, Loader=YamlLoader)``) wherever workflow YAML must be
    read exactly as the loader reads it, e.g. ``on:`` as a string key. It does not apply the
    alias-expansion budget; :func:`load_text` does.
    """

    yaml_implicit_resolvers: dict[Any, Any] = {}

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(
                    f"nesting deeper than {MAX_DEPTH} levels",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)
YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)
YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)
YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)
YamlLoader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])


def _construct_bool(loader: yaml.SafeLoader, node: Node) -> bool:
    value = loader.construct_scalar(node)  # type: ignore[arg-type]
    return str(value).lower() == "true"


def _construct_int(loader: yaml.SafeLoader, node: Node) -> int:
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


YamlLoader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)
YamlLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


_STR, _NULL, _BOOL, _INT, _FLOAT, _SEQ, _MAP = (
    f"tag:yaml.org,2002:{t}" for t in ("str", "null", "bool", "int", "float", "seq", "map")
)


_PLAIN_SCALARS = 100_000
"""Most plain scalars (of at most 64 characters) whose tag the fast loader remembers: a few MB
at most, and every key and most values of a workflow are among them."""


def _libyaml_loader() -> type[Any] | None:
    """A LibYAML-backed loader with :class:`YamlLoader`'s resolvers and constructors, or None.

    Needs LibYAML 0.2.5 or later, whose parser refuses nesting past 1000 levels itself (the C
    composer recurses, so an unbounded depth could exhaust the C stack before our limit applies).
    """
    try:
        from yaml import CSafeLoader
        from yaml._yaml import get_version
    except ImportError:  # pragma: no cover - PyYAML built without LibYAML
        return None
    if tuple(get_version()) < (0, 2, 5):  # pragma: no cover - old system LibYAML
        return None

    resolvers: dict[Any, list[tuple[str, re.Pattern[str]]]] = YamlLoader.yaml_implicit_resolvers
    wildcard = resolvers.get(None, [])
    by_first = {ch: tuple(found + wildcard) for ch, found in resolvers.items() if ch is not None}
    otherwise = tuple(wildcard)
    plain: dict[str, str] = {}
    """The tag of each plain scalar seen (keys and values repeat across files: one lookup)."""

    class FastLoader(CSafeLoader):
        yaml_implicit_resolvers = resolvers
        yaml_constructors = YamlLoader.yaml_constructors

        # Resolver.resolve without path resolvers (we register none): same tags, less work
        # for the C parser's call per node.
        def descend_resolver(self, current_node: Any, current_index: Any) -> None:
            return None

        def ascend_resolver(self) -> None:
            return None

        def resolve(self, kind: type[Node], value: Any, implicit: tuple[bool, bool]) -> str:
            if kind is ScalarNode:
                if implicit[0]:
                    tag = plain.get(value)
                    if tag is None:
                        tag = _STR
                        for candidate, regexp in by_first.get(value[:1], otherwise):
                            if regexp.match(value):
                                tag = candidate
                                break
                        if len(value) <= 64 and len(plain) < _PLAIN_SCALARS:
                            plain[value] = tag
                    return tag
                return _STR
            return _SEQ if kind is SequenceNode else _MAP

    return FastLoader


_FAST_LOADER = _libyaml_loader()
_NON_PRINTABLE: re.Pattern[str] = yaml.reader.Reader.NON_PRINTABLE


def _known_keys() -> set[str]:
    keys: set[str] = set()
    for obj in [*vars(models).values(), *vars(notifications).values()]:
        if isinstance(obj, type) and issubclass(obj, BaseModel) and obj is not BaseModel:
            for name, info in obj.model_fields.items():
                keys.add(info.alias or name)
    return keys | {"action", "next", "onError"}


_KNOWN_KEYS = _known_keys()


def load_text(text: str | bytes, *, path: str) -> FileResult:
    """Load one file's content. Never raises for bad content: problems are in the result."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    digest = hashlib.sha256(raw).hexdigest()
    result = FileResult(path=path, digest=digest)
    if len(raw) > MAX_FILE_BYTES:
        result.problems.append(
            Problem(path, 1, 1, f"file is larger than {MAX_FILE_BYTES // 1024} KiB; refused")
        )
        return result
    if b"\x00" in raw:
        result.problems.append(Problem(path, 1, 1, "binary file (contains NUL bytes), not YAML"))
        return result
    try:
        decoded = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        result.problems.append(
            Problem(path, line, column, f"not UTF-8 text (invalid byte 0x{raw[exc.start]:02x})")
        )
        return result
    fast = _fast_documents(decoded, kept=raw)
    if fast is not None:
        for built in fast:
            _load_document(built.node, result, built=built)
        return result
    for node, problem in _documents(decoded, path=path):
        if problem is not None:
            result.problems.append(problem)
            continue
        assert node is not None
        _load_document(node, result)
    return result


def cached_documents(result: FileResult) -> list[tuple[int, int, Workflow]] | None:
    """What :func:`restore_text` needs to rebuild ``result`` without parsing: each workflow's
    ``(line, document index, model)``; ``None`` when ``result`` cannot be rebuilt that way (it
    has a problem, an invalid name or a notification document, or was read by the pure-Python
    path, whose positions are not kept as the document's place in the file)."""
    if result.problems or result.invalid_names or result.notifications:
        return None
    out: list[tuple[int, int, Workflow]] = []
    for lw in result.workflows:
        if not isinstance(lw.positions, _LazyPositions):
            return None
        out.append((lw.line, lw.positions.index, lw.workflow))
    return out


def restore_text(
    text: str | bytes, *, path: str, documents: list[tuple[int, int, Workflow]]
) -> FileResult:
    """The :class:`FileResult` :func:`load_text` gives for ``text`` at ``path``, rebuilt from
    what :func:`cached_documents` kept of an earlier load of the same bytes: nothing is parsed,
    and the positions are read from ``text`` again when a problem needs them."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    result = FileResult(path=path, digest=hashlib.sha256(raw).hexdigest())
    for line, index, workflow in documents:
        positions = _LazyPositions(raw, index)
        result.workflows.append(LoadedWorkflow(workflow, path, line, positions))
    return result


def load_file(file: Path, *, display: str | None = None) -> FileResult:
    """Load one file from disk; unreadable, special or oversized files become problems.

    Read with :func:`~reconciler.config.files.read_workflow_file`: a FIFO or device is never
    opened, a file over :data:`MAX_FILE_BYTES` never read.
    """
    shown = display if display is not None else file.as_posix()
    try:
        data = read_workflow_file(file, within=None, limit=MAX_FILE_BYTES)
    except FileRefused as refused:
        return refused_result(shown, refused.reason)
    if data is None:
        return refused_result(shown, "cannot read file: No such file or directory")
    return load_text(data, path=shown)


@contextmanager
def bulk_loading() -> Iterator[None]:
    """Keep the cyclic garbage collector out of a large synchronous load.

    Loading allocates millions of small objects that mostly survive (positions, models), so the
    collector's passes find nothing to free yet cost as much as the parsing itself (about half of
    a 10,000-file load), and every later full collection would rescan them. So the collector is
    paused for the block and, at its end, everything alive is moved to its permanent generation
    (:func:`gc.freeze`) before it resumes (if it was on). Garbage already waiting for the
    collector is collected first, so the freeze pins none of it; loading creates no reference
    cycles, and frozen objects are still freed by reference counting when dropped (an old
    snapshot's files). Meant for large loads (a cold start, a big commit), not for every file;
    use only around synchronous code, never across an ``await``.
    """
    was_enabled = gc.isenabled()
    if was_enabled:
        gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def load_tree(
    root: Path,
    *,
    display_root: Path | None = None,
    revision: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Snapshot:
    """Load every workflow file under ``root`` into a :class:`Snapshot`.

    ``Snapshot.files`` is keyed by the path relative to ``root`` (POSIX separators); problems
    show ``display_root / relative`` when ``display_root`` is given (the CLI passes the path as
    the user typed it), else the relative path. ``revision`` defaults to a digest of the files'
    contents, so equal trees give equal revisions. Files are read with
    :func:`~reconciler.config.files.read_tree`, as the daemon's directory source reads them: a
    symlink that leaves ``root``, a FIFO, device or socket, or a file over :data:`MAX_FILE_BYTES`
    is an error for that file, and never opened or read. A directory that cannot be listed is
    one error. ``progress`` is told ``(files parsed, files in all)`` after each file.
    """
    files: dict[str, FileResult] = {}
    with bulk_loading():
        try:
            tree = read_tree(root, within=root, limit=MAX_FILE_BYTES)
        except OSError as exc:
            shown = (display_root or root).as_posix()
            reason = f"cannot read directory: {exc.strerror or type(exc).__name__}"
            return Snapshot.from_files(
                revision or "unreadable", {shown: refused_result(shown, reason)}
            )
        names = sorted({*tree.files, *tree.refused})
        for done, rel in enumerate(names, start=1):
            shown = (display_root / rel).as_posix() if display_root is not None else rel
            if rel in tree.refused:
                files[rel] = refused_result(shown, tree.refused[rel])
            else:
                files[rel] = load_text(tree.files[rel], path=shown)
            if progress is not None:
                progress(done, len(names))
    if revision is None:
        h = hashlib.sha256()
        for rel, result in sorted(files.items()):
            h.update(rel.encode())
            h.update(b"\0")
            h.update(result.digest.encode())
            h.update(b"\0")
        revision = "sha256:" + h.hexdigest()[:16]
    return Snapshot.from_files(revision, files)


# -- parsing ---------------------------------------------------------------------------------


def _documents(text: str, *, path: str) -> Iterator[tuple[Node | None, Problem | None]]:
    """Each document's node (checked against the size limits), or the problem that stops it."""
    try:
        loader = YamlLoader(text)
    except yaml.reader.ReaderError as exc:
        yield None, _reader_problem(path, text, exc)
        return
    try:
        while True:
            try:
                if not loader.check_node():
                    return
                node = loader.get_node()
            except _Refused as exc:
                yield None, _mark_problem(path, exc.mark, f"refused: {exc.message}")
                return
            except yaml.MarkedYAMLError as exc:
                yield None, _yaml_problem(path, exc)
                return
            except yaml.reader.ReaderError as exc:
                yield None, _reader_problem(path, text, exc)
                return
            except yaml.YAMLError as exc:
                yield None, Problem(path, 1, 1, f"YAML error: {_one_line(str(exc))}")
                return
            except RecursionError:
                yield None, Problem(path, 1, 1, f"refused: nesting deeper than {MAX_DEPTH} levels")
                return
            if node is None:
                continue
            refusal = _check_expansion(node)
            if refusal is not None:
                yield None, _mark_problem(path, refusal.mark, f"refused: {refusal.message}")
                continue
            yield node, None
    finally:
        loader.dispose()


@dataclass(frozen=True)
class _Built:
    """One document read by the fast path: its data and duplicated keys (positions are only
    computed, by :func:`_positions`, when a problem needs them)."""

    node: Node
    data: Any
    duplicates: list[tuple[Node, str]]
    text: str | bytes
    index: int
    """The file's text (or its UTF-8 bytes) and this document's place among its documents."""


class _LazyPositions(Mapping[Loc, NodePos]):
    """A valid workflow's positions, rebuilt from its file's text on first use.

    Positions are only read to report a problem (validation, duplicates), and a full map costs
    about twenty times the file's text (a tuple key and a :class:`NodePos` per node: 200 MB for
    10,000 workflows), so a workflow loaded by the fast path keeps its text instead: the file's
    bytes when it was given them (the very object the source keeps for the file, so nothing
    more is held), decoded on first use.
    """

    __slots__ = ("_index", "_map", "_text")

    def __init__(self, text: str | bytes, index: int) -> None:
        self._text = text
        self._index = index
        self._map: dict[Loc, NodePos] | None = None

    @property
    def index(self) -> int:
        """The document's place among its file's documents."""
        return self._index

    def _positions(self) -> dict[Loc, NodePos]:
        if self._map is None:
            text = self._text
            if isinstance(text, bytes):
                text = text.decode("utf-8-sig")
            fast = _fast_documents(text)
            if fast is not None:
                nodes = [built.node for built in fast]
            else:  # LibYAML went away meanwhile (tests switch it off): read it the pure way
                nodes = [n for n, _ in _documents(text, path="") if n is not None]
            found = _positions(nodes[self._index])[0] if nodes[self._index :] else {}
            self._map, self._text = found, ""
        return self._map

    def __getitem__(self, loc: Loc) -> NodePos:
        return self._positions()[loc]

    def __contains__(self, loc: object) -> bool:
        return loc in self._positions()

    def __iter__(self) -> Iterator[Loc]:
        return iter(self._positions())

    def __len__(self) -> int:
        return len(self._positions())


class _Unusual(Exception):
    """Something the fast path leaves to the pure-Python path (never escapes this module)."""


def _fast_documents(text: str, *, kept: str | bytes | None = None) -> list[_Built] | None:
    """Every document composed by LibYAML and built in one walk, or None to use the pure path.

    None whenever the pure-Python path could report something or build differently (any YAML
    error, a character PyYAML's reader refuses, a document past the depth or expansion budget,
    a non-string key, a merge key, a tag other than str/null/bool/int/float/seq/map), so that
    path alone decides every problem and its position. ``kept`` is what the documents keep to
    rebuild their positions from (``text`` unless given: the bytes ``text`` was decoded from).
    """
    if _FAST_LOADER is None or _NON_PRINTABLE.search(text):
        return None
    loader = _FAST_LOADER(text)
    out: list[_Built] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            builder = _Builder()
            data = builder.build(node, 1)
            source = text if kept is None else kept
            out.append(_Built(node, data, builder.duplicates, source, len(out)))
    except (_Unusual, yaml.YAMLError, RecursionError, ValueError):
        return None
    finally:
        loader.dispose()
    return out


class _Builder:
    """Builds a document's data exactly as :class:`YamlLoader` would for the tags it knows,
    recording :func:`_positions` and the duplicated keys on the way. Budgets: raises
    :class:`_Unusual` past :data:`MAX_DEPTH` or :data:`MAX_EXPANDED_NODES` (an alias is built
    each time it is used, so the count equals :func:`_check_expansion`'s, and a recursive alias
    ends at the depth limit)."""

    __slots__ = ("count", "duplicates")

    def __init__(self) -> None:
        self.duplicates: list[tuple[Node, str]] = []
        self.count = 1

    def build(self, node: Node, depth: int) -> Any:
        """The node's data; raises :class:`_Unusual` for anything the fast path leaves alone."""
        if depth > MAX_DEPTH:
            raise _Unusual
        kind = type(node)
        tag = node.tag
        if kind is ScalarNode:
            if tag == _STR:
                return node.value  # most scalars: spared a call through the table
            construct = _SCALARS.get(tag)
            if construct is None:
                raise _Unusual
            return construct(node.value)
        if kind is SequenceNode and tag == _SEQ:
            return self._sequence(node.value, depth)
        if kind is MappingNode and tag == _MAP:
            return self._mapping(node.value, depth)
        raise _Unusual

    def _sequence(self, items: list[Node], depth: int) -> list[Any]:
        self._expand(len(items), depth)
        build = self.build
        return [
            item.value if type(item) is ScalarNode and item.tag == _STR else build(item, depth + 1)
            for item in items
        ]

    def _mapping(self, pairs: list[tuple[Node, Node]], depth: int) -> dict[str, Any]:
        self._expand(2 * len(pairs), depth)
        build = self.build
        mapping: dict[str, Any] = {}
        for k, v in pairs:
            if type(k) is not ScalarNode or k.tag != _STR or k.value == "<<":
                raise _Unusual
            name: str = k.value
            if name in mapping:
                self.duplicates.append((k, name))
            # most values are plain strings: taken here, spared a call of build
            if type(v) is ScalarNode and v.tag == _STR:
                mapping[name] = v.value
            else:
                mapping[name] = build(v, depth + 1)
        return mapping

    def _expand(self, nodes: int, depth: int) -> None:
        """Count ``nodes`` more built nodes, one level below ``depth``; raises
        :class:`_Unusual` past the node budget, or past the depth limit when there are any."""
        self.count += nodes
        if self.count > MAX_EXPANDED_NODES or (nodes and depth + 1 > MAX_DEPTH):
            raise _Unusual


def _int(text: str) -> int:
    """A YAML int as the fast path reads it: ``0o`` octal, ``0x`` hexadecimal, else decimal."""
    if text.startswith("0o"):
        return int(text[2:], 8)
    return int(text, 0 if text.startswith("0x") else 10)


def _float(text: str) -> float:
    """A YAML 1.2 core float, as PyYAML's SafeConstructor reads it."""
    value = text.lower()
    sign = -1.0 if value.startswith("-") else 1.0
    value = value.lstrip("+-")
    if value == ".inf":
        return sign * float("inf")
    if value == ".nan":
        return float("nan")
    return sign * float(value)


_SCALARS: dict[str, Callable[[str], Any]] = {
    _STR: lambda text: text,
    _NULL: lambda text: None,
    _BOOL: lambda text: text.lower() == "true",
    _INT: _int,
    _FLOAT: _float,
}
"""How :class:`_Builder` reads a scalar of each tag it knows (the others are :class:`_Unusual`)."""


def _check_expansion(root: Node) -> _Refused | None:
    """Refuse recursive aliases and documents that expand past the node and depth budget."""
    sizes: dict[int, tuple[int, int]] = {}
    active: set[int] = set()
    # Iterative post-order walk: the composed graph shares aliased nodes, so memoise by id.
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            active.discard(key)
            count, depth = 1, 0
            for child in _children(node):
                c_count, c_depth = sizes[id(child)]
                count += c_count
                depth = max(depth, c_depth)
                if count > MAX_EXPANDED_NODES:
                    return _Refused(
                        f"document expands to more than {MAX_EXPANDED_NODES} nodes through "
                        "anchors and aliases (alias bomb?)",
                        node.start_mark,
                    )
            if depth + 1 > MAX_DEPTH:
                return _Refused(f"nesting deeper than {MAX_DEPTH} levels", node.start_mark)
            sizes[key] = (count, depth + 1)
            continue
        if key in sizes:
            continue
        if key in active:
            return _Refused("recursive alias (an anchor used inside itself)", node.start_mark)
        active.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in active:
                return _Refused("recursive alias (an anchor used inside itself)", child.start_mark)
            if id(child) not in sizes:
                stack.append((child, False))
    return None


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        out: list[Node] = []
        for k, v in node.value:
            out.extend((k, v))
        return out
    return []


def _positions(root: Node) -> tuple[dict[Loc, NodePos], list[tuple[Node, str]]]:
    """Position of every path in the document, and every duplicated mapping key."""
    positions: dict[Loc, NodePos] = {
        (): NodePos(None, _pos(root.start_mark), isinstance(root, ScalarNode))
    }
    duplicates: list[tuple[Node, str]] = []
    stack: list[tuple[Loc, Node]] = [((), root)]
    while stack:
        loc, node = stack.pop()
        if isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                positions[(*loc, i)] = NodePos(
                    None, _pos(item.start_mark), isinstance(item, ScalarNode)
                )
                stack.append(((*loc, i), item))
        elif isinstance(node, MappingNode):
            seen: set[str] = set()
            for k, v in node.value:
                if not isinstance(k, ScalarNode):
                    continue
                name = str(k.value)
                if name in seen and name != "<<":
                    duplicates.append((k, name))
                seen.add(name)
                positions[(*loc, name)] = NodePos(
                    _pos(k.start_mark), _pos(v.start_mark), isinstance(v, ScalarNode)
                )
                stack.append(((*loc, name), v))
    return positions, duplicates


def _pos(mark: yaml.Mark) -> tuple[int, int]:
    return mark.line + 1, mark.column + 1


# -- documents -------------------------------------------------------------------------------


def _load_document(node: Node, result: FileResult, *, built: _Built | None = None) -> None:
    """Add the document's workflow to ``result``, or its problems (then its name, if readable, to
    ``result.invalid_names``); an empty document adds nothing, another kind adds a warning."""
    path = result.path
    doc_line = node.start_mark.line + 1
    positions: dict[Loc, NodePos] | None = None
    if built is not None:
        duplicates, data = built.duplicates, built.data
    else:
        constructed = _construct(node, path=path)
        if isinstance(constructed, Problem):
            result.problems.append(constructed)
            return
        data, positions, duplicates = constructed
    if data is None:
        return  # an empty document (e.g. a trailing ``---``)
    refused = _not_a_workflow(data, node, positions, path=path)
    if refused is not None:
        result.problems.append(refused)
        return
    if data.get("kind") in NOTIFICATION_KINDS:
        _load_notification(data, node, result, built=built, positions=positions, dups=duplicates)
        return
    name = _readable_name(data)
    problems = [
        _duplicate_problem(key_node, key, path=path, name=name) for key_node, key in duplicates
    ]
    workflow, invalid = _validate_workflow(data, node, positions, path=path, name=name)
    problems.extend(invalid)
    result.problems.extend(problems)
    if problems or workflow is None:
        if name is not None:
            result.invalid_names.add(name)
        return
    kept: Mapping[Loc, NodePos]
    if built is not None:
        kept = _LazyPositions(built.text, built.index)
    else:
        assert positions is not None
        kept = positions
    result.workflows.append(
        LoadedWorkflow(
            workflow=workflow,
            path=path,
            line=doc_line,
            positions=kept,
        )
    )


def _load_notification(
    data: dict[str, Any],
    node: Node,
    result: FileResult,
    *,
    built: _Built | None,
    positions: dict[Loc, NodePos] | None,
    dups: list[tuple[Node, str]],
) -> None:
    """Add a Provider or Alert document to ``result``, or its problems (each naming the
    document, ``Kind/name``, so that no workflow is marked invalid for them)."""
    path = result.path
    kind = str(data["kind"])
    model = NOTIFICATION_KINDS[kind]
    name = _readable_name(data)
    document = f"{kind}/{name or '?'}"
    problems = [
        replace(_duplicate_problem(key_node, key, path=path, name=None), document=document)
        for key_node, key in dups
    ]
    doc_line = node.start_mark.line + 1
    loaded: Provider | Alert | None = None
    try:
        loaded = model.model_validate(data)
    except ValidationError as exc:
        if positions is None:
            positions = _positions(node)[0]
        found = _validation_problems(exc, positions, path=path, name=None, doc_line=doc_line)
        problems.extend(replace(p, document=document) for p in found)
    result.problems.extend(problems)
    if problems or loaded is None:
        return
    kept: Mapping[Loc, NodePos]
    if built is not None:
        kept = _LazyPositions(built.text, built.index)
    else:
        assert positions is not None
        kept = positions
    result.notifications.append(
        LoadedNotification(document=loaded, path=path, line=doc_line, positions=kept)
    )


def _construct(
    node: Node, *, path: str
) -> tuple[Any, dict[Loc, NodePos], list[tuple[Node, str]]] | Problem:
    """The document's data, positions and duplicated keys as the pure-Python path reads them, or
    the ``YAML error`` problem that stops it."""
    positions, duplicates = _positions(node)
    try:
        loader = YamlLoader("")
        data = loader.construct_document(node)
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
        mark = getattr(exc, "problem_mark", None) or node.start_mark
        detail = getattr(exc, "problem", None) or _one_line(str(exc)) or type(exc).__name__
        return _mark_problem(path, mark, f"YAML error: {detail}")
    return data, positions, duplicates


def _not_a_workflow(
    data: Any, node: Node, positions: Mapping[Loc, NodePos] | None, *, path: str
) -> Problem | None:
    """Why a non-empty document is not read as a workflow: an error when it is not a mapping, a
    warning when it declares another apiVersion or kind; ``None`` when it is (or may be) ours.

    ``positions`` are the document's, or ``None`` to compute them when needed.
    """
    doc_line = node.start_mark.line + 1
    if not isinstance(data, dict):
        return Problem(
            path,
            doc_line,
            node.start_mark.column + 1,
            f"a workflow document is a mapping (apiVersion, kind, metadata, spec), "
            f"found {_yaml_type(data)}",
        )
    api_version, kind = data.get("apiVersion"), data.get("kind")
    ours = kind == KIND or (isinstance(api_version, str) and api_version.startswith("reconciler"))
    if ours or (kind is None and api_version is None):
        return None
    if positions is None:
        positions = _positions(node)[0]
    where = locate(positions, ("kind",), default=(doc_line, 1))
    return Problem(
        path,
        *where,
        f"not a reconciler workflow (apiVersion {api_version!r}, kind {kind!r}); "
        f"expected apiVersion {API_VERSION!r} and kind {KIND!r}; document ignored",
        severity="warning",
    )


def _duplicate_problem(key_node: Node, key: str, *, path: str, name: str | None) -> Problem:
    """The error for a mapping key that appears twice, at the second one."""
    line, column = _pos(key_node.start_mark)
    return Problem(
        path, line, column, f"duplicate key {key!r} (the last one would win)", workflow=name
    )


def _validate_workflow(
    data: dict[str, Any],
    node: Node,
    positions: Mapping[Loc, NodePos] | None,
    *,
    path: str,
    name: str | None,
) -> tuple[Workflow | None, list[Problem]]:
    """The document's :class:`Workflow`, or ``None`` and the schema's problems at their places.

    ``positions`` are the document's, or ``None`` to compute them when needed.
    """
    doc_line = node.start_mark.line + 1
    try:
        return Workflow.model_validate(data), []
    except ValidationError as exc:
        if positions is None:
            positions = _positions(node)[0]
        return None, _validation_problems(exc, positions, path=path, name=name, doc_line=doc_line)
    except (ValueError, TypeError, RecursionError) as exc:  # pragma: no cover - defensive
        return None, [
            Problem(path, doc_line, 1, f"invalid workflow: {_one_line(str(exc))}", workflow=name)
        ]


def _readable_name(data: Mapping[str, Any]) -> str | None:
    metadata = data.get("metadata")
    if isinstance(metadata, Mapping):
        name = metadata.get("name")
        if isinstance(name, str) and name:
            return name
    return None


def _validation_problems(
    exc: ValidationError,
    positions: Mapping[Loc, NodePos],
    *,
    path: str,
    name: str | None,
    doc_line: int,
) -> list[Problem]:
    out: list[Problem] = []
    seen: set[tuple[int, int, str]] = set()
    for err in exc.errors(include_url=False, include_input=False):
        loc: Loc = tuple(err["loc"])
        kind = err["type"]
        shown = _dotted(loc)
        if kind == "extra_forbidden":
            key = str(loc[-1]) if loc else "?"
            close = difflib.get_close_matches(key, _KNOWN_KEYS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            message = f"unknown key {key!r} in {_dotted(loc[:-1]) or 'the document'}{hint}"
            line, column = locate(positions, loc, key=True, default=(doc_line, 1))
        elif kind == "missing":
            message = f"{shown}: required field is missing"
            line, column = locate(positions, loc, key=True, default=(doc_line, 1))
        else:
            msg = str(err["msg"])
            msg = msg.removeprefix("Value error, ")
            message = f"{shown}: {msg}" if shown else msg
            line, column = locate(positions, loc, default=(doc_line, 1))
        if (line, column, message) in seen:
            continue
        seen.add((line, column, message))
        out.append(Problem(path, line, column, message, workflow=name))
    return out


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _yaml_type(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"


def _yaml_problem(path: str, exc: yaml.MarkedYAMLError) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    detail = exc.problem or exc.context or "invalid YAML"
    context = ""
    if exc.context and exc.problem:
        started = exc.context_mark
        if started is not None and mark is not None and started.line != mark.line:
            context = f" ({exc.context} started at line {started.line + 1})"
        else:
            context = f" ({exc.context})"
    return _mark_problem(path, mark, f"YAML syntax error: {detail}{context}")


def _reader_problem(path: str, text: str, exc: yaml.reader.ReaderError) -> Problem:
    position = max(0, min(int(exc.position), len(text)))
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return Problem(
        path, line, column, f"not YAML text: control character #x{exc.character:04x} is not allowed"
    )


def _mark_problem(path: str, mark: yaml.Mark | None, message: str) -> Problem:
    if mark is None:
        return Problem(path, 1, 1, message)
    return Problem(path, mark.line + 1, mark.column + 1, message)


def _one_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""
