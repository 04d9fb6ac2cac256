"""``--help`` written for people: value names instead of Python type names.

typer describes an option's value by its annotation (``<bool>``, ``<str>``, ``<list[Path]>``)
and a required argument as ``{paths}...``. People coming from kubectl, argocd or git expect
``--server URL``, ``--strict`` with nothing after it, and ``validate PATH...``.
:class:`HumanGroup`, the class of the ``reconciler`` application's group, rewrites that once
typer has built the commands: every option shows its ``metavar`` (set where a better word than
the fallback exists, e.g. ``URL``, ``FILE``, ``DURATION``) or a plain word for its type
(``TEXT``, ``INTEGER``, ``PATH``, the choices as ``a|b``), a flag shows nothing, and an
argument is its name in capitals. Only the help changes: parsing, values and errors are
typer's own. Sub-groups (``reconciler secrets``) and commands added later are covered, since
the rewrite walks the whole tree each time typer builds the application.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

__all__ = ["HumanGroup", "human_type"]

_PLAIN_TYPES: dict[Any, str] = {str: "TEXT", int: "INTEGER", float: "NUMBER", Path: "PATH"}


def human_type(option: TyperOption) -> str | None:
    """The word ``--help`` shows after ``option``: its metavar, nothing for a flag, the choices
    of an enum as ``a|b``, else a plain word for its type (``TEXT`` when nothing fits)."""
    if option.metavar is not None:
        return option.metavar
    if option.is_flag:
        return None
    descriptor = option.type_descriptor
    annotation = descriptor.annotation
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "|".join(str(member.value) for member in annotation)
    if descriptor.is_path:
        return "PATH"
    element = getattr(annotation, "__args__", (annotation,))[0] if descriptor.is_list else None
    return _PLAIN_TYPES.get(element if element is not None else annotation, "TEXT")


class HumanOption(TyperOption):
    """An option whose help shows :func:`human_type` in the type column."""

    __slots__ = ()

    def display_type_rich(self, ctx: Any) -> str | None:
        return human_type(self)


class HumanArgument(TyperArgument):
    """An argument shown by its name in capitals (``PATHS...``, ``[NAME]``), without a type."""

    @property
    def display_name_raw(self) -> str:
        return self.metavar or (self.name or "value").upper()

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def _rich_display_name(self) -> str:
        name = self.display_name_raw
        return f"{name}..." if self.nargs != 1 and not name.endswith("...") else name

    def _usage_display_name(self) -> str:
        name = self._rich_display_name()
        return name if self.required else f"[{name}]"


def _humanize_params(params: list[Any]) -> None:
    for param in params:
        if type(param) is TyperOption:
            param.__class__ = HumanOption
        elif type(param) is TyperArgument:
            param.__class__ = HumanArgument


class HumanCommand(TyperCommand):
    """A command whose ``--help`` speaks of values, not Python types."""

    def get_params(self, ctx: Any) -> list[Any]:
        params: list[Any] = super().get_params(ctx)
        _humanize_params(params)  # --help and typer's own options are added late
        return params


class HumanGroup(TyperGroup):
    """The application's group: rewrites the help of every command under it (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        humanize(self)

    def get_params(self, ctx: Any) -> list[Any]:
        params: list[Any] = super().get_params(ctx)
        _humanize_params(params)
        return params


def humanize(group: TyperGroup) -> None:
    """Give ``group``, its commands and its sub-groups human help (idempotent)."""
    _humanize_params(group.params)
    for command in group.commands.values():
        if type(command) is TyperCommand:
            command.__class__ = HumanCommand
        elif type(command) is TyperGroup:
            command.__class__ = HumanGroup
        if isinstance(command, TyperGroup):
            humanize(command)
        else:
            _humanize_params(command.params)


def typer_app(**settings: Any) -> typer.Typer:
    """A ``typer.Typer`` whose help is :class:`HumanGroup`'s (for sub-command groups too)."""
    return typer.Typer(cls=HumanGroup, **settings)
