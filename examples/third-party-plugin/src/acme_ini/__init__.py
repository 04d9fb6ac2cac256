"""``ini.set``: a third-party reconciler plugin that makes a key of an INI file hold a value.

Where it sits: outside reconciler. This package registers the plugin in the
``reconciler.plugins`` entry-point group (see ``pyproject.toml``); reconciler's plugin registry
(``reconciler.PluginRegistry.discover``) finds it once the package is installed, and the
runner calls :meth:`IniSet.run` like any built-in plugin.

It follows the plugin contract (docs/plugins.md): a pydantic request with camelCase aliases and
field descriptions, a response with an honest ``changed``, named errors, atomic writes and a
clean cancellation.
"""

from __future__ import annotations

import asyncio
import configparser
import io
import os
import tempfile
from pathlib import Path

from pydantic import ConfigDict, Field
from pydantic.alias_generators import to_camel

from reconciler import ActionContext, NotFound, Plugin, PluginError, Request, Response

__all__ = ["IniSet", "IniSetRequest", "IniSetResponse", "MalformedIni"]


class MalformedIni(PluginError):
    """The file is not valid INI (not retryable: the file must be fixed first)."""

    retryable = False


class IniSetRequest(Request):
    """What ``ini.set`` makes true."""

    model_config = ConfigDict(alias_generator=to_camel)

    path: str = Field(min_length=1, description="INI file; relative paths use the workdir.")
    section: str = Field(min_length=1, description="Section name, e.g. 'server'.")
    key: str = Field(min_length=1, description="Key inside the section.")
    value: str = Field(description="The value the key must hold.")
    create: bool = Field(True, description="Create the file when it is missing.")


class IniSetResponse(Response):
    """What ``ini.set`` did."""

    model_config = ConfigDict(alias_generator=to_camel)

    changed: bool = Field(False, description="True if the file was written.")
    previous: str | None = Field(None, description="The key's value before (null if absent).")


def _converge(path: Path, request: IniSetRequest) -> IniSetResponse:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep the key's case
    if path.exists():
        try:
            parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
        except configparser.Error as exc:
            raise MalformedIni(f"{path}: {exc}") from None
    elif not request.create:
        raise NotFound(f"{path} does not exist (and create is false)")
    previous = parser.get(request.section, request.key, fallback=None)
    if previous == request.value:
        return IniSetResponse(changed=False, previous=previous)
    if not parser.has_section(request.section):
        parser.add_section(request.section)
    parser.set(request.section, request.key, request.value)
    text = io.StringIO()
    parser.write(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text.getvalue())
        os.replace(tmp, path)  # readers see the old file or the new one, never half of it
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return IniSetResponse(changed=True, previous=previous)


class IniSet(Plugin[IniSetRequest, IniSetResponse]):
    """Make a key of an INI file hold a value (changed only when it differed).

    Errors: ``MalformedIni`` (the file is not INI), ``NotFound`` (missing and ``create: false``).
    """

    Request = IniSetRequest
    Response = IniSetResponse
    errors = (MalformedIni, NotFound)

    async def run(self, request: IniSetRequest, context: ActionContext) -> IniSetResponse:
        path = Path(request.path)
        if not path.is_absolute():
            path = context.workdir / path
        # small, local and atomic: a worker thread keeps the event loop free
        return await asyncio.to_thread(_converge, path, request)
