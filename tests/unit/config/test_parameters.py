"""spec.parameters: declarations (types, defaults, enum, clash with spec.inputs) and the
validation of values given for one run, each refusal naming the input."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.config.loader import load_text
from reconciler.config.parameters import Parameter, accept_inputs, parameter_defaults
from reconciler.config.validate import validate_workflow
from reconciler.errors import InputRejected
from reconciler.plugin import PluginRegistry

HEAD = """\
apiVersion: reconciler/v1
kind: Workflow
metadata:
  name: scale
spec:
"""
MACHINE = """\
  start: done
  states:
    done:
      end: success
"""


def parameter(**fields: Any) -> Parameter:
    return Parameter.model_validate(fields)


PARAMETERS = {
    "replicas": parameter(type="integer", default=2, description="how many"),
    "ratio": parameter(type="number", default=0.5),
    "env": parameter(type="string", default="staging", enum=["staging", "prod"]),
    "dry_run": parameter(type="boolean", default=True),
    "hosts": parameter(type="array", default=[]),
    "labels": parameter(type="object", default={}),
    "region": parameter(type="string", default="eu", settable=False),
}


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        ("string", "web", 5),
        ("integer", 5, "5"),
        ("integer", -1, 2.5),
        ("integer", 0, True),
        ("number", 2.5, "2.5"),
        ("number", 3, False),
        ("boolean", False, "false"),
        ("array", [1, "a"], {"a": 1}),
        ("object", {"a": [1]}, [1]),
    ],
)
def test_each_type_accepts_its_values_and_refuses_others_without_coercion(
    kind: str, good: Any, bad: Any
) -> None:
    assert parameter(type=kind, default=good).default == good
    with pytest.raises(ValueError, match=f"default: expected an? {kind}"):
        parameter(type=kind, default=bad)


def test_settable_defaults_to_true_and_description_to_empty() -> None:
    declared = parameter(type="integer", default=1)
    assert declared.settable is True
    assert declared.description == ""
    assert declared.enum is None


def test_a_default_outside_its_enum_is_refused() -> None:
    with pytest.raises(ValueError, match="default 'dev' is not one of enum"):
        parameter(type="string", default="dev", enum=["staging", "prod"])


def test_an_enum_value_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(ValueError, match="enum value 1: expected a string, got 3"):
        parameter(type="string", default="a", enum=["a", 3])


def test_a_parameter_needs_a_default() -> None:
    with pytest.raises(ValueError, match="default"):
        Parameter.model_validate({"type": "string"})


def test_defaults_are_the_inputs_of_a_run_nobody_set_them_for() -> None:
    defaults = parameter_defaults(PARAMETERS)
    assert defaults["replicas"] == 2
    assert defaults["env"] == "staging"
    assert set(defaults) == set(PARAMETERS)


def test_accepted_inputs_come_back_as_given() -> None:
    given = {"replicas": 5, "env": "prod", "ratio": 1, "hosts": ["a"], "labels": {"x": "y"}}
    assert accept_inputs("scale", PARAMETERS, given) == given


def test_an_unknown_input_is_refused_naming_it_and_the_settable_ones() -> None:
    with pytest.raises(InputRejected) as caught:
        accept_inputs("scale", PARAMETERS, {"replica": 5})
    assert caught.value.code == "unknown_input"
    assert caught.value.input == "replica"
    message = str(caught.value)
    assert "'replica'" in message and "'scale'" in message
    assert "replicas" in message and "region" not in message


def test_an_input_declared_not_settable_is_refused() -> None:
    with pytest.raises(InputRejected, match="'region' of workflow 'scale' is not settable") as c:
        accept_inputs("scale", PARAMETERS, {"region": "us"})
    assert (c.value.code, c.value.input) == ("input_not_settable", "region")


def test_a_value_of_the_wrong_type_is_refused_saying_what_was_expected() -> None:
    with pytest.raises(InputRejected) as caught:
        accept_inputs("scale", PARAMETERS, {"replicas": "five"})
    assert (caught.value.code, caught.value.input) == ("invalid_input", "replicas")
    assert "input 'replicas' of workflow 'scale': expected an integer, got 'five'" in str(
        caught.value
    )


def test_a_value_outside_the_enum_is_refused_listing_the_allowed_ones() -> None:
    with pytest.raises(InputRejected, match=r"'env'.*expected one of \['staging', 'prod'\]"):
        accept_inputs("scale", PARAMETERS, {"env": "dev"})


def test_the_first_refused_input_in_name_order_is_reported() -> None:
    with pytest.raises(InputRejected) as caught:
        accept_inputs("scale", PARAMETERS, {"replicas": "x", "env": "dev"})
    assert caught.value.input == "env"


def test_a_long_value_is_cut_short_in_the_message() -> None:
    with pytest.raises(InputRejected) as caught:
        accept_inputs("scale", PARAMETERS, {"replicas": "x" * 500})
    assert len(str(caught.value)) < 200


def test_a_bad_default_in_a_file_is_reported_at_its_parameter_with_path_line_and_column() -> None:
    text = (
        HEAD
        + """\
  parameters:
    replicas:
      type: integer
      default: three
"""
        + MACHINE
    )
    result = load_text(text, path="scale.yaml")
    assert not result.workflows
    [problem] = result.problems
    assert (problem.path, problem.line) == ("scale.yaml", 7)
    assert problem.column > 0
    assert "default: expected an integer, got 'three'" in problem.message


def test_a_parameter_name_must_be_a_cel_identifier() -> None:
    text = HEAD + "  parameters:\n    max-replicas: {type: integer, default: 1}\n" + MACHINE
    result = load_text(text, path="scale.yaml")
    assert not result.workflows
    [problem] = result.problems
    assert (problem.line, problem.column) == (7, 5)
    assert "spec.parameters.max-replicas" in problem.message


def test_a_name_in_both_spec_inputs_and_spec_parameters_is_a_validation_error() -> None:
    text = (
        HEAD
        + """\
  inputs:
    replicas: 2
  parameters:
    replicas:
      type: integer
      default: 3
"""
        + MACHINE
    )
    [lw] = load_text(text, path="scale.yaml").workflows
    [problem] = validate_workflow(lw, PluginRegistry())
    assert (problem.path, problem.line, problem.workflow) == ("scale.yaml", 9, "scale")
    assert "parameter 'replicas' is also in spec.inputs" in problem.message


def test_a_valid_declaration_loads_and_validates_cleanly() -> None:
    text = (
        HEAD
        + """\
  parameters:
    replicas: {type: integer, default: 2, description: how many, settable: true}
    env: {type: string, default: staging, enum: [staging, prod]}
"""
        + MACHINE
    )
    [lw] = load_text(text, path="scale.yaml").workflows
    assert validate_workflow(lw, PluginRegistry()) == []
    assert lw.workflow.spec.parameters["env"].enum == ["staging", "prod"]


def test_inputs_over_the_size_limit_are_refused_naming_the_largest() -> None:
    big = {"labels": {f"k{i}": "v" * 100 for i in range(1000)}, "replicas": 3}
    with pytest.raises(InputRejected, match="more than 64 KiB as JSON") as caught:
        accept_inputs("scale", PARAMETERS, big)
    assert (caught.value.code, caught.value.input) == ("inputs_too_large", "labels")
