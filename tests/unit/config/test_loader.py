"""The loader: files and trees become snapshots; every problem has the line it is about."""

from __future__ import annotations

import time
from pathlib import Path
from textwrap import dedent

from reconciler.config.loader import (
    MAX_FILE_BYTES,
    load_file,
    load_text,
    load_tree,
)
from reconciler.config.snapshot import Snapshot, compact

GOOD = dedent(
    """\
    apiVersion: reconciler/v1
    kind: Workflow
    metadata:
      name: {name}
    spec:
      start: write
      states:
        write:
          action:
            plugin: file.write
            with: {{path: /tmp/x, content: hello}}
          next: done
          onError: failed
        done: {{end: success}}
        failed: {{end: failure}}
    """
)


def good(name: str = "demo") -> str:
    return GOOD.format(name=name)


def test_good_document_loads_with_its_line_and_digest() -> None:
    result = load_text(good(), path="a.yaml")
    assert result.problems == []
    [lw] = result.workflows
    assert lw.name == "demo" and lw.path == "a.yaml" and lw.line == 1
    assert len(lw.digest) == 64


def test_on_key_stays_a_string_under_yaml_1_2_booleans() -> None:
    text = good().replace(
        "      next: done\n",
        "      transitions:\n        - to: done\n          on: success\n",
    )
    [lw] = load_text(text, path="a.yaml").workflows
    transitions = lw.workflow.spec.states["write"].transitions
    assert transitions[0].on == ["success"]


def test_yes_no_on_off_are_plain_strings_and_dates_stay_strings() -> None:
    text = good().replace(
        "spec:\n",
        "spec:\n  inputs: {a: yes, b: no, c: on, d: off, e: true, f: 2024-01-01, g: 017, h: 1:30}\n",
    )
    [lw] = load_text(text, path="a.yaml").workflows
    assert lw.workflow.spec.inputs == {
        "a": "yes",
        "b": "no",
        "c": "on",
        "d": "off",
        "e": True,
        "f": "2024-01-01",
        "g": 17,
        "h": "1:30",
    }


def test_digest_ignores_formatting_key_order_and_shorthands() -> None:
    [a] = load_text(good(), path="a.yaml").workflows
    reordered = dedent(
        """\
        kind: Workflow
        apiVersion: reconciler/v1
        metadata: {name: demo}
        spec:
          states:
            failed: {end: failure}
            done: {end: success}
            write:
              do: [{plugin: file.write, with: {content: hello, path: /tmp/x}}]
              transitions: [{to: done, on: success}, {to: failed, on: error}]
          start: write
        """
    )
    [b] = load_text(reordered, path="b.yaml").workflows
    assert a.digest == b.digest
    [c] = load_text(good().replace("hello", "bye"), path="a.yaml").workflows
    assert c.digest != a.digest


def test_unknown_key_points_at_the_key_with_a_suggestion() -> None:
    text = good().replace("      next: done\n", "      next: done\n      retires: 3\n")
    result = load_text(text, path="a.yaml")
    [problem] = result.problems
    assert (problem.line, problem.column) == (13, 7)
    assert "unknown key 'retires'" in problem.message and "'retry'" in problem.message
    assert problem.workflow == "demo"
    assert result.workflows == [] and result.invalid_names == {"demo"}


def test_wrong_value_points_at_the_value() -> None:
    text = good().replace("name: demo", "name: Not_Valid")
    [problem] = load_text(text, path="a.yaml").problems
    assert (problem.line, problem.column) == (4, 9)
    assert problem.message.startswith("metadata.name:")


def test_missing_field_points_at_the_parent_key() -> None:
    text = good().replace("  start: write\n", "")
    [problem] = load_text(text, path="a.yaml").problems
    assert problem.line == 5  # `spec:`
    assert "spec.start: required field is missing" in problem.message


def test_error_in_a_next_shorthand_points_at_the_next_key() -> None:
    text = good().replace("next: done", "next: {bad: 1}")
    problems = load_text(text, path="a.yaml").problems
    assert problems and all(p.line == 12 for p in problems)


def test_two_documents_one_bad_still_yields_the_good_one() -> None:
    text = good("first") + "---\n" + good("second").replace("end: failure", "end: maybe")
    result = load_text(text, path="a.yaml")
    assert [lw.name for lw in result.workflows] == ["first"]
    assert result.invalid_names == {"second"}
    [problem] = result.problems
    assert problem.line == 16 + 15 and problem.workflow == "second"
    assert result.workflows[0].line == 1


def test_yaml_syntax_error_reports_its_line_and_keeps_earlier_documents() -> None:
    text = good("first") + "---\nkey: [unclosed\nother: 1\n"
    result = load_text(text, path="a.yaml")
    assert [lw.name for lw in result.workflows] == ["first"]
    [problem] = result.problems
    assert problem.line == 18 and "YAML syntax error" in problem.message


def test_duplicate_keys_are_errors() -> None:
    text = good().replace("  start: write\n", "  start: write\n  start: done\n")
    [problem] = load_text(text, path="a.yaml").problems
    assert problem.line == 7 and "duplicate key 'start'" in problem.message


def test_foreign_documents_are_reported_as_warnings_not_ignored() -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"
    [problem] = load_text(text, path="cm.yaml").problems
    assert problem.severity == "warning" and "not a reconciler workflow" in problem.message
    assert problem.line == 2


def test_misspelt_kind_of_a_reconciler_document_is_an_error_at_the_kind() -> None:
    text = good().replace("kind: Workflow", "kind: Workfow")
    [problem] = load_text(text, path="a.yaml").problems
    assert problem.severity == "error" and (problem.line, problem.column) == (2, 7)


def test_a_document_that_is_not_a_mapping_is_one_problem() -> None:
    [problem] = load_text("- a\n- b\n", path="a.yaml").problems
    assert "mapping" in problem.message


def test_empty_documents_are_skipped_silently() -> None:
    result = load_text("---\n" + good() + "---\n", path="a.yaml")
    assert result.problems == [] and len(result.workflows) == 1


def test_binary_file_is_one_clear_problem() -> None:
    [problem] = load_text(b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR", path="x.yaml").problems
    assert "binary" in problem.message


def test_non_utf8_bytes_are_one_problem_with_the_line() -> None:
    [problem] = load_text(b"a: 1\nb: \xff\xfe\n", path="x.yaml").problems
    assert (problem.line, problem.column) == (2, 4) and "UTF-8" in problem.message


def test_control_characters_are_one_problem() -> None:
    [problem] = load_text("a: 1\nb: \x07\n", path="x.yaml").problems
    assert problem.line == 2 and "control character" in problem.message


def test_billion_laughs_is_refused_quickly() -> None:
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, cur in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    started = time.monotonic()
    [problem] = load_text("\n".join(lines) + "\n", path="bomb.yaml").problems
    assert time.monotonic() - started < 10  # generous safety bound; it takes milliseconds
    assert problem.message.startswith("refused:") and "alias" in problem.message


def test_small_alias_use_is_allowed() -> None:
    text = good().replace("spec:\n", "spec:\n  inputs:\n    base: &base {a: 1}\n    copy: *base\n")
    [lw] = load_text(text, path="a.yaml").workflows
    assert lw.workflow.spec.inputs["copy"] == {"a": 1}


def test_recursive_alias_is_refused() -> None:
    [problem] = load_text("a: &a [1, *a]\n", path="r.yaml").problems
    assert "recursive alias" in problem.message


def test_deep_nesting_is_refused() -> None:
    for text in ("[" * 200 + "]" * 200, "[" * 100_000):
        [problem] = load_text(text, path="deep.yaml").problems
        assert "nesting deeper" in problem.message


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * MAX_FILE_BYTES + "\n")
    [problem] = load_file(big, display="big.yaml").problems
    assert problem.path == "big.yaml" and "larger than" in problem.message


def test_tree_skips_hidden_dirs_and_non_yaml_files(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "bad.yaml").write_text("a: [")
    (tmp_path / "README.md").write_text("a: [")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "one.yml").write_text(good("one"))
    (tmp_path / "two.yaml").write_text(good("two"))
    snapshot = load_tree(tmp_path)
    assert sorted(snapshot.workflows) == ["one", "two"]
    assert sorted(snapshot.files) == ["sub/one.yml", "two.yaml"]
    assert snapshot.problems == []
    assert snapshot.workflows["one"].path == "sub/one.yml"


def test_one_bad_file_never_hides_another_or_rejects_a_good_one(tmp_path: Path) -> None:
    (tmp_path / "a-bad.yaml").write_text("a: [")
    (tmp_path / "b-bad.yaml").write_text(good("broken").replace("start: write", "start: 3: 4"))
    (tmp_path / "c-good.yaml").write_text(good("fine"))
    snapshot = load_tree(tmp_path, display_root=Path("repo"))
    assert list(snapshot.workflows) == ["fine"]
    assert sorted({p.path for p in snapshot.problems}) == ["repo/a-bad.yaml", "repo/b-bad.yaml"]


def test_duplicate_names_across_files_are_problems_on_both_and_neither_loads(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.yaml").write_text(good("same"))
    (tmp_path / "b.yaml").write_text(good("same"))
    (tmp_path / "c.yaml").write_text(good("other"))
    snapshot = load_tree(tmp_path)
    assert list(snapshot.workflows) == ["other"]
    dups = [p for p in snapshot.problems if "duplicate workflow name" in p.message]
    assert sorted((p.path, p.line) for p in dups) == [("a.yaml", 4), ("b.yaml", 4)]
    assert len(snapshot.invalid["same"]) == 2


def test_invalid_workflow_is_listed_by_name_with_its_problems(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(good("broken").replace("end: success", "end: nope"))
    snapshot = load_tree(tmp_path)
    assert snapshot.workflows == {}
    assert list(snapshot.invalid) == ["broken"]
    assert snapshot.invalid["broken"][0].line == 14


def test_snapshot_rebuilds_incrementally_from_reused_file_results(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(good("a"))
    (tmp_path / "b.yaml").write_text(good("b"))
    first = load_tree(tmp_path)
    changed = load_text(good("b").replace("hello", "changed"), path="b.yaml")
    second = Snapshot.from_files("rev-2", {**first.files, "b.yaml": changed})
    assert second.revision == "rev-2"
    assert second.workflows["a"] is first.workflows["a"]
    assert second.workflows["b"].digest != first.workflows["b"].digest


def _shape(snapshot: Snapshot) -> tuple[object, ...]:
    return (
        snapshot.revision,
        list(snapshot.workflows.items()),
        [str(p) for p in snapshot.problems],
        snapshot.invalid,
        list(snapshot.files.items()),
    )


def test_a_change_built_on_the_previous_snapshot_equals_the_full_assembly() -> None:
    base = {f"{n}.yaml": load_text(good(n), path=f"{n}.yaml") for n in ("a", "b", "c")}
    first = Snapshot.from_files("rev-1", base)
    changes = {
        "an edit": {"b.yaml": load_text(good("b").replace("hello", "hi"), path="b.yaml")},
        "a rename": {"b.yaml": load_text(good("z"), path="b.yaml")},
        "a clash": {"b.yaml": load_text(good("a"), path="b.yaml")},
        "a broken file": {"b.yaml": load_text("spec: [", path="b.yaml")},
        "a second document": {"b.yaml": load_text(good("b") + "---\n" + good("d"), path="b.yaml")},
    }
    for why, change in changes.items():
        files = {**first.files, **change}
        quick = Snapshot.from_files("rev-2", files, previous=first)
        assert _shape(quick) == _shape(Snapshot.from_files("rev-2", files)), why
    edited = Snapshot.from_files("rev-2", {**first.files, **changes["an edit"]}, previous=first)
    assert edited.workflows["a"] is first.workflows["a"]
    assert edited.workflows["b"] is changes["an edit"]["b.yaml"].workflows[0]
    assert list(first.workflows) == ["a", "b", "c"]  # the previous snapshot is left as it was
    assert first.workflows["b"] is base["b.yaml"].workflows[0]
    broken = Snapshot.from_files("rev-3", {**first.files, **changes["a broken file"]})
    repaired = Snapshot.from_files("rev-4", first.files, previous=broken)
    assert _shape(repaired) == _shape(Snapshot.from_files("rev-4", first.files))


def test_compacted_workflows_share_their_field_sets_and_stay_independent() -> None:
    first, second = (load_text(good(n), path=f"{n}.yaml") for n in ("a", "b"))
    before = first.workflows[0].workflow.model_dump(), second.workflows[0].workflow.model_dump()
    compact(first)
    compact(second)
    one, two = first.workflows[0].workflow, second.workflows[0].workflow
    assert one.metadata.model_fields_set is two.metadata.model_fields_set
    assert (one.model_dump(), two.model_dump()) == before
    renamed = one.metadata.model_copy(update={"labels": {"team": "x"}})
    assert renamed.model_fields_set == {"name", "labels"}
    assert one.metadata.model_fields_set == two.metadata.model_fields_set == {"name"}


def test_tree_revision_follows_content(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(good("a"))
    first = load_tree(tmp_path).revision
    assert load_tree(tmp_path).revision == first
    (tmp_path / "a.yaml").write_text(good("a").replace("hello", "bye"))
    assert load_tree(tmp_path).revision != first


def test_symlink_leaving_the_tree_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text(good("outside"))
    root = tmp_path / "root"
    root.mkdir()
    (root / "link.yaml").symlink_to(outside)
    snapshot = load_tree(root)
    assert snapshot.workflows == {}
    [problem] = snapshot.problems
    # An error for that file, as the daemon's directory source reports it: the workflow it held
    # turns Invalid rather than silently disappearing.
    assert problem.severity == "error" and "symlink" in problem.message
    assert problem.path == "link.yaml"


def test_locate_maps_normalised_paths_back_to_what_was_written() -> None:
    [lw] = load_text(good(), path="a.yaml").workflows
    assert lw.locate(("spec", "states", "write", "do", 0, "with", "path")) == (11, 22)
    assert lw.locate(("spec", "states", "write", "do", 0, "plugin")) == (10, 17)
    assert lw.locate(("spec", "states", "write", "transitions", 0, "to")) == (12, 7)
    assert lw.locate(("spec", "states", "write", "transitions", 1, "to")) == (13, 7)
    assert lw.locate(("spec", "states", "write"), key=True) == (8, 5)
    assert lw.locate(("spec", "nothing", "here")) == (5, 1)
