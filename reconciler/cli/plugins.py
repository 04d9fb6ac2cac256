"""``reconciler plugins``: what plugins this installation has, and what each one accepts.

Where it sits: a read-only view of :class:`reconciler.plugin.PluginRegistry` (the same discovery
the daemon and ``reconciler validate`` use), registered on :data:`reconciler.cli.app.app`. It
runs nothing. Authors use it to see a plugin's request and response JSON Schemas; CI uses
``--output json`` to check that the plugins its workflows need are installed.

Exit codes follow :mod:`reconciler.cli.app`: 0 when the listing (or the named plugin) could be
shown, 2 for an unknown name or a plugin that failed to load. Entry points that failed to
import are shown (on stderr for text output, under ``loadErrors`` for json) without failing the
listing, since the other plugins still work.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

import typer
from pydantic.errors import PydanticUserError
from rich.markup import escape
from rich.table import Table

from reconciler.cli.app import OutputFormat, OutputOption, app, console, err_console, fail
from reconciler.plugin import Plugin, PluginRegistry

__all__ = ["describe_plugin", "plugins_command"]


def describe_plugin(
    name: str, plugin_cls: type[Plugin[Any, Any]], *, schemas: bool
) -> dict[str, Any]:
    """A JSON-able description of one plugin; with ``schemas`` its request/response JSON Schemas."""
    out: dict[str, Any] = {
        "name": name,
        "check": bool(plugin_cls.check),
        "description": plugin_cls.description(),
        "errors": [err.__name__ for err in plugin_cls.errors],
        "retry": (
            plugin_cls.retry.model_dump(mode="json", by_alias=True)
            if plugin_cls.retry is not None
            else None
        ),
        "module": f"{plugin_cls.__module__}:{plugin_cls.__qualname__}",
    }
    if schemas:
        doc = inspect.cleandoc(plugin_cls.__doc__ or "")
        out["documentation"] = doc
        out["request"] = _schema(plugin_cls, "Request")
        out["response"] = _schema(plugin_cls, "Response")
    return out


def _schema(plugin_cls: type[Plugin[Any, Any]], which: str) -> dict[str, Any]:
    """The JSON Schema of ``plugin_cls.<which>``, or why a (third-party) model has none."""
    try:
        model = getattr(plugin_cls, which)
        mode = "validation" if which == "Request" else "serialization"
        schema: dict[str, Any] = model.model_json_schema(by_alias=True, mode=mode)
    except (AttributeError, TypeError, PydanticUserError) as exc:
        return {"error": f"no JSON Schema: {type(exc).__name__}: {exc}"}
    return schema


@app.command("plugins")
def plugins_command(
    name: str | None = typer.Argument(
        None, help="Show this plugin's description and request/response JSON Schemas."
    ),
    output: OutputFormat = OutputOption,
) -> None:
    """List installed plugins, or show one plugin's request and response schemas."""
    registry = PluginRegistry.discover()
    if name is None:
        _list(registry, output)
    else:
        _show(registry, name, output)


def _list(registry: PluginRegistry, output: OutputFormat) -> None:
    registry.load_all()
    rows = [describe_plugin(n, registry.get(n), schemas=False) for n in registry.names()]
    if output is OutputFormat.json:
        payload = {"plugins": rows, "loadErrors": dict(sorted(registry.load_errors.items()))}
        typer.echo(json.dumps(payload, indent=2))
        return
    table = Table(title=None, show_lines=False)
    table.add_column("NAME", style="bold", no_wrap=True)
    table.add_column("CHECK", justify="center")
    table.add_column("DESCRIPTION")
    for row in rows:
        table.add_row(row["name"], "yes" if row["check"] else "", row["description"])
    console.print(table)
    for failed, reason in sorted(registry.load_errors.items()):
        err_console.print(
            f"[yellow]warning:[/yellow] plugin {escape(repr(failed))} failed to load: "
            f"{escape(reason)}",
            highlight=False,
            soft_wrap=True,
        )


def _show(registry: PluginRegistry, name: str, output: OutputFormat) -> None:
    if name not in registry:
        raise fail(registry.unknown_message(name))
    info = describe_plugin(name, registry.get(name), schemas=True)
    if output is OutputFormat.json:
        typer.echo(json.dumps(info, indent=2))
        return
    console.print(f"[bold]{name}[/bold]" + ("  (check: read-only)" if info["check"] else ""))
    paragraphs = (info["documentation"] or info["description"]).split("\n\n")
    console.print("\n\n".join(" ".join(p.split()) for p in paragraphs), highlight=False)
    console.print(f"\nerrors: {', '.join(info['errors']) or '-'}", highlight=False)
    if info["retry"] is not None:
        retry = info["retry"]
        console.print(
            f"default retry: {retry['attempts']} attempts, delay {retry['delay']}, "
            f"backoff {retry['backoff']}, maxDelay {retry['maxDelay']}",
            highlight=False,
        )
    else:
        console.print("default retry: none (one attempt)", highlight=False)
    console.print("\n[bold]request[/bold] (the action's `with:`)")
    typer.echo(json.dumps(info["request"], indent=2))
    console.print("\n[bold]response[/bold] (outputs.<as>, result, observed)")
    typer.echo(json.dumps(info["response"], indent=2))
