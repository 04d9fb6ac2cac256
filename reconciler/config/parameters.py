"""Run-time parameters: the inputs of a workflow a caller may set for one run.

A workflow declares them under ``spec.parameters`` (name → :class:`Parameter`: a type, a
default, a description, an optional ``enum``, whether it is ``settable``). Each is an
``inputs.<name>`` CEL variable like the keys of ``spec.inputs``: its default fills it for every
run nobody set it for (drift runs, spec changes, plain syncs), and a run started through
``POST /api/v1/workflows/NAME/runs`` or ``reconciler sync NAME --input k=v`` gets the value its
caller gave, for that run only.

The declarations are the single description of what a caller may send: :func:`accept_inputs`
validates run-time values with a pydantic :class:`~pydantic.TypeAdapter` per declared type (in
strict mode: ``"5"`` is no integer, ``true`` is no number), and :class:`Parameter` checks its own
default and ``enum`` with the same adapters, so what a file declares and what a caller sends are
judged alike.

Called by: :mod:`reconciler.config.models` (``Spec.parameters``), the engine (the defaults, via
:func:`parameter_defaults`) and the daemon's API (:func:`accept_inputs`, before a request is
recorded). Calls: pydantic only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from reconciler.errors import InputRejected
from reconciler.types import Model

ParameterType = Literal["string", "integer", "number", "boolean", "array", "object"]

PARAMETER_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
"""A parameter's name is a CEL identifier: it is read as ``inputs.<name>``."""

ADAPTERS: dict[str, TypeAdapter[Any]] = {
    "string": TypeAdapter(StrictStr),
    "integer": TypeAdapter(StrictInt),
    "number": TypeAdapter(StrictInt | StrictFloat),
    "boolean": TypeAdapter(StrictBool),
    "array": TypeAdapter(list[Any]),
    "object": TypeAdapter(dict[str, Any]),
}
"""The validator of each declared type; strict, so nothing is coerced across types."""

MAX_INPUTS_BYTES = 64 * 1024
"""Most bytes the inputs of one run may take as JSON: they are kept in the command log, the run's
record and its journal, and a parameter is a knob, not a payload."""

ARTICLE = {"integer": "an", "array": "an", "object": "an"}


def _describe(kind: str) -> str:
    return f"{ARTICLE.get(kind, 'a')} {kind}"


def _shown(value: Any) -> str:
    """``value`` as a caller wrote it, cut short (a message must stay one readable line)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def type_problem(kind: str, value: Any) -> str | None:
    """What is wrong with ``value`` as a value of type ``kind``; ``None`` when it is one."""
    try:
        ADAPTERS[kind].validate_python(value, strict=True)
    except ValidationError:
        return f"expected {_describe(kind)}, got {_shown(value)}"
    return None


class Parameter(Model):
    """One run-time parameter: ``inputs.<name>``, set by a caller for one run or defaulted."""

    type: ParameterType = Field(description="What a value must be (JSON types).")
    default: Any = Field(
        description="The value of every run nobody set it for (drift runs, spec changes, plain "
        "syncs); must be of `type` (and one of `enum`)."
    )
    description: str = Field("", description="What the parameter means, for people.")
    enum: list[Any] | None = Field(
        None, min_length=1, description="The only values allowed, when given."
    )
    settable: bool = Field(
        True,
        description="Whether a caller may set it for one run (false: only git changes it).",
    )

    @model_validator(mode="after")
    def _default_fits(self) -> Parameter:
        for i, value in enumerate(self.enum or []):
            problem = type_problem(self.type, value)
            if problem is not None:
                raise ValueError(f"enum value {i}: {problem}")
        problem = type_problem(self.type, self.default)
        if problem is not None:
            raise ValueError(f"default: {problem}")
        if self.enum is not None and self.default not in self.enum:
            raise ValueError(f"default {_shown(self.default)} is not one of enum {self.enum!r}")
        return self


def parameter_defaults(parameters: Mapping[str, Parameter]) -> dict[str, Any]:
    """Every parameter's default, by name: the ``inputs.*`` of a run nobody set them for."""
    return {name: p.default for name, p in parameters.items()}


def accept_inputs(
    workflow: str, parameters: Mapping[str, Parameter], given: Mapping[str, Any]
) -> dict[str, Any]:
    """Validate inputs given for one run of ``workflow`` against its declared parameters.

    Returns the accepted values by name. Raises :class:`~reconciler.errors.InputRejected` for
    the first refused input in name order: one not declared, one declared ``settable: false``,
    or a value not of its type (or not one of its ``enum``); the message names the input and
    what was expected. Inputs over :data:`MAX_INPUTS_BYTES` as JSON are refused as a whole
    (``inputs_too_large``, naming the largest).
    """
    accepted: dict[str, Any] = {}
    for name in sorted(given):
        value = given[name]
        declared = parameters.get(name)
        if declared is None:
            known = ", ".join(sorted(n for n, p in parameters.items() if p.settable)) or "none"
            raise InputRejected(
                f"workflow {workflow!r} has no parameter {name!r} (settable parameters: {known})",
                code="unknown_input",
                input=name,
            )
        if not declared.settable:
            raise InputRejected(
                f"input {name!r} of workflow {workflow!r} is not settable (settable: false in "
                "spec.parameters; only a change in git sets it)",
                code="input_not_settable",
                input=name,
            )
        problem = type_problem(declared.type, value)
        if problem is None and declared.enum is not None and value not in declared.enum:
            problem = f"expected one of {declared.enum!r}, got {_shown(value)}"
        if problem is not None:
            raise InputRejected(
                f"input {name!r} of workflow {workflow!r}: {problem}",
                code="invalid_input",
                input=name,
            )
        accepted[name] = value
    sizes = {name: len(json.dumps(value)) for name, value in accepted.items()}
    if sum(sizes.values()) > MAX_INPUTS_BYTES:
        largest = max(sizes, key=lambda name: sizes[name])
        raise InputRejected(
            f"the inputs of workflow {workflow!r} take more than {MAX_INPUTS_BYTES // 1024} KiB "
            f"as JSON (the largest: {largest!r}, {sizes[largest]} bytes)",
            code="inputs_too_large",
            input=largest,
        )
    return accepted
