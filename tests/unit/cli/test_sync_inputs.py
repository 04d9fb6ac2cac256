"""``reconciler sync --input KEY=VALUE`` and ``--inputs-file``: values keep their YAML type."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.cli.inputs import InputsError, collect_inputs, parse_input


@pytest.mark.parametrize(
    ("pair", "expected"),
    [
        ("replicas=5", ("replicas", 5)),
        ("ratio=0.25", ("ratio", 0.25)),
        ("dry_run=true", ("dry_run", True)),
        ("env=prod", ("env", "prod")),
        ("answer=yes", ("answer", "yes")),  # YAML 1.2: no yes/no booleans
        ("version='1.10'", ("version", "1.10")),
        ('version="1.10"', ("version", "1.10")),
        ("note=", ("note", "")),
        ("url=http://h/a?b=c", ("url", "http://h/a?b=c")),  # only the first = splits
        ("hosts=[a, b]", ("hosts", ["a", "b"])),
        ('labels={"team": "ops"}', ("labels", {"team": "ops"})),
        ("day=2026-12-06", ("day", "2026-12-06")),  # no timestamps: a string
        ("odd=[unbalanced", ("odd", "[unbalanced")),  # not YAML: the text as written
    ],
)
def test_an_input_value_is_read_as_yaml(pair: str, expected: tuple[str, Any]) -> None:
    assert parse_input(pair) == expected


def test_an_input_without_an_equals_sign_is_refused_with_an_example() -> None:
    with pytest.raises(InputsError, match=r"--input 'replicas': expected KEY=VALUE"):
        parse_input("replicas")


def test_an_input_key_must_be_a_parameter_name() -> None:
    with pytest.raises(InputsError, match="'max-replicas' is not a parameter name"):
        parse_input("max-replicas=3")


def test_inputs_file_is_read_and_a_later_input_of_the_same_key_wins(tmp_path: Path) -> None:
    file = tmp_path / "inputs.yaml"
    file.write_text("replicas: 3\nenv: prod\n", encoding="utf-8")
    assert collect_inputs(["replicas=7", "replicas=9"], file) == {"replicas": 9, "env": "prod"}


def test_inputs_file_may_be_json(tmp_path: Path) -> None:
    file = tmp_path / "inputs.json"
    file.write_text('{"replicas": 3, "hosts": ["a"]}', encoding="utf-8")
    assert collect_inputs([], file) == {"replicas": 3, "hosts": ["a"]}


def test_an_inputs_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "inputs.yaml"
    file.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(InputsError, match="expected a mapping of input names to values"):
        collect_inputs([], file)


def test_a_missing_inputs_file_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(InputsError, match=r"cannot read --inputs-file .*absent\.yaml"):
        collect_inputs([], tmp_path / "absent.yaml")


def test_a_broken_inputs_file_is_refused_with_its_position(tmp_path: Path) -> None:
    file = tmp_path / "inputs.yaml"
    file.write_text("a: [1,\nb: 2\n", encoding="utf-8")
    with pytest.raises(InputsError, match=r"inputs.yaml:\d+:\d+: not YAML or JSON"):
        collect_inputs([], file)
