"""``reconciler schema``: the JSON Schema of workflow files, plugin requests included, for editors.

Not part of the run flow: it turns :class:`reconciler.config.models.Workflow` and each installed
plugin's pydantic ``Request`` into one JSON Schema (draft 2020-12) that editors use through
``# yaml-language-server: $schema=...``. Each ``plugin``/``with`` pair (actions, observe, checks,
poll, subscribe) is refined with ``if plugin == X then with: <X.Request>``; a ``with`` field may
always be given as a ``${{ }}`` string instead, since it is rendered at run time.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from reconciler.cli.app import app, fail
from reconciler.config.models import Workflow
from reconciler.config.notifications import Alert, Provider
from reconciler.plugin import PluginRegistry

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
TEMPLATE_STRING: dict[str, Any] = {
    "type": "string",
    "pattern": r"\$\{\{",
    "description": "A ${{ CEL }} expression, rendered at run time.",
}
_PLUGIN_CALLS = ("Action", "Poll", "Subscribe")


def workflow_schema(registry: PluginRegistry) -> dict[str, Any]:
    """The Workflow JSON Schema with each plugin's request schema attached to its ``with``."""
    schema = Workflow.model_json_schema(by_alias=True)
    schema["$schema"] = SCHEMA_DIALECT
    schema.setdefault("title", "reconciler Workflow")
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    branches: list[dict[str, Any]] = []
    for name in registry.names():
        request = registry.get(name).Request
        prefix = f"plugin.{name}."
        request_schema = request.model_json_schema(
            by_alias=True, ref_template=f"#/$defs/{prefix}{{model}}"
        )
        for def_name, definition in request_schema.pop("$defs", {}).items():
            defs[prefix + def_name] = definition
        _allow_templates(request_schema)
        key = f"{prefix}request"
        defs[key] = request_schema
        branches.append(
            {
                "if": {"properties": {"plugin": {"const": name}}, "required": ["plugin"]},
                "then": {"properties": {"with": {"$ref": f"#/$defs/{key}"}}},
            }
        )
    _accept_on_shorthand(defs)
    for call in _PLUGIN_CALLS:
        definition = defs.get(call)
        if definition is None:
            continue
        plugin_prop = definition.get("properties", {}).get("plugin")
        if plugin_prop is not None and registry.names():
            plugin_prop["examples"] = registry.names()
        if branches:
            definition["allOf"] = [*definition.get("allOf", []), *branches]
    return with_notification_documents(schema)


def with_notification_documents(workflow: dict[str, Any]) -> dict[str, Any]:
    """One schema for every document a repository holds: ``kind: Provider`` and ``kind: Alert``
    by their models, anything else as a Workflow (the workflow schema moves under
    ``$defs/Workflow``; its references into ``$defs`` are unchanged)."""
    defs: dict[str, Any] = workflow.pop("$defs", {})
    dialect = workflow.pop("$schema", SCHEMA_DIALECT)
    title = workflow.get("title", "Workflow")
    defs["Workflow"] = workflow
    for model in (Provider, Alert):
        doc = model.model_json_schema(by_alias=True)
        for def_name, definition in doc.pop("$defs", {}).items():
            defs.setdefault(def_name, definition)
        defs[model.__name__] = doc

    def kind_is(kind: str) -> dict[str, Any]:
        return {"properties": {"kind": {"const": kind}}, "required": ["kind"]}

    return {
        "$schema": dialect,
        "title": f"{title}, Provider or Alert",
        "$defs": defs,
        "if": kind_is("Provider"),
        "then": {"$ref": "#/$defs/Provider"},
        "else": {
            "if": kind_is("Alert"),
            "then": {"$ref": "#/$defs/Alert"},
            "else": {"$ref": "#/$defs/Workflow"},
        },
    }


def _accept_on_shorthand(defs: dict[str, Any]) -> None:
    """A transition's ``on`` may be one name (``on: success``) as well as a list."""
    on = defs.get("Transition", {}).get("properties", {}).get("on")
    if on is None:
        return
    description = on.get("description")
    on.clear()
    on["anyOf"] = [
        {"type": "string"},
        {"type": "array", "items": {"type": "string"}},
        {"type": "null"},
    ]
    on["default"] = None
    if description:
        on["description"] = description


def _allow_templates(request_schema: dict[str, Any]) -> None:
    """Let every top-level request field also be a ``${{ }}`` string."""
    for field, prop in list(request_schema.get("properties", {}).items()):
        request_schema["properties"][field] = {"anyOf": [prop, TEMPLATE_STRING]}


class SchemaFormat(StrEnum):
    """The schema is JSON whatever is asked: ``-o json`` is accepted (and is the default) so
    that ``-o`` means the format here as on every other command."""

    json = "json"


def _schema_format(value: str | SchemaFormat) -> SchemaFormat:
    """``json``; anything else is a usage error that points a file name (what ``-o`` took
    before it meant the format) to ``--out``."""
    if isinstance(value, SchemaFormat):
        return value
    if value.strip().lower() == "json":
        return SchemaFormat.json
    raise typer.BadParameter(f"{value!r} is not a format (json); to write a file use --out {value}")


@app.command()
def schema(
    output: Annotated[
        SchemaFormat,
        typer.Option(
            "--output",
            "-o",
            parser=_schema_format,
            metavar="json",
            help="The format printed: json (the only one; the schema is JSON).",
        ),
    ] = SchemaFormat.json,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="FILE",
            help="Write the schema to this file instead of printing it.",
        ),
    ] = None,
) -> None:
    """Print the JSON Schema of workflow files (plugin requests included) for editors."""
    text = json.dumps(
        workflow_schema(PluginRegistry.discover().load_all()), indent=2, sort_keys=False
    )
    if out is None:
        print(text)
        return
    try:
        out.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise fail(f"{out}: cannot write: {exc.strerror or type(exc).__name__}") from None
