"""The run inputs of ``reconciler sync NAME --input KEY=VALUE --inputs-file FILE``.

Each ``--input`` is ``KEY=VALUE``; the value is read as one YAML 1.2 value with the workflow
format's own loader (:class:`~reconciler.config.loader.YamlLoader`), so ``replicas=5`` is the
integer 5, ``dry_run=true`` a boolean, ``tags=[a, b]`` a list, ``name=web`` and ``note=`` (empty)
strings; quote to keep a string (``version='"1.10"'``). ``--inputs-file`` is a YAML or JSON
mapping of the same; an ``--input`` of the same key wins over the file. Nothing is checked against
the workflow here: the daemon validates the inputs against its ``spec.parameters`` and answers 422
naming the input it refuses.

Called by: :func:`reconciler.cli.remote.sync`. Calls: the YAML loader only (pure but for reading
the file).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from reconciler.config.loader import YamlLoader
from reconciler.config.parameters import PARAMETER_NAME_PATTERN

__all__ = ["InputsError", "collect_inputs", "parse_input"]


class InputsError(ValueError):
    """An ``--input`` or ``--inputs-file`` that cannot be read; the message says which."""


def parse_value(text: str) -> Any:
    """``text`` as one YAML 1.2 value (empty text: the empty string)."""
    if text == "":
        return ""
    try:
        value = yaml.load(text, Loader=YamlLoader)
    except yaml.YAMLError:
        return text  # not YAML (e.g. an unbalanced bracket): the text as written
    return value


def parse_input(pair: str) -> tuple[str, Any]:
    """One ``--input KEY=VALUE`` as ``(key, value)``; :class:`InputsError` without ``=`` or
    with a key that is no parameter name."""
    key, sep, text = pair.partition("=")
    key = key.strip()
    if not sep:
        raise InputsError(f"--input {pair!r}: expected KEY=VALUE (e.g. --input replicas=5)")
    if not _is_name(key):
        raise InputsError(
            f"--input {pair!r}: {key!r} is not a parameter name (letters, digits, _; not first "
            "a digit)"
        )
    return key, parse_value(text)


def collect_inputs(pairs: Sequence[str], file: Path | None = None) -> dict[str, Any]:
    """The inputs of ``--inputs-file`` (a YAML or JSON mapping), then of every ``--input`` in
    order (a later one of the same key wins)."""
    inputs: dict[str, Any] = {}
    if file is not None:
        inputs.update(_read_file(file))
    for pair in pairs:
        key, value = parse_input(pair)
        inputs[key] = value
    return inputs


def _is_name(key: str) -> bool:
    return re.fullmatch(PARAMETER_NAME_PATTERN, key) is not None


def _read_file(file: Path) -> dict[str, Any]:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputsError(f"cannot read --inputs-file {file}: {exc.strerror}") from None
    try:
        data = yaml.load(text, Loader=YamlLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise InputsError(f"--inputs-file {file}{where}: not YAML or JSON") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise InputsError(f"--inputs-file {file}: expected a mapping of input names to values")
    return dict(data)
