"""Value types shared across layers: :data:`Duration` and :class:`RetryPolicy`.

They describe values, not workflows, so they sit below every package that uses them: the
workflow format (:mod:`reconciler.config.models`, which re-exports them), the plugin contract
(:mod:`reconciler.plugin`, whose plugins declare a default ``RetryPolicy``), the engine's retry
loop, the daemon's settings and the built-in plugins' requests. This module imports nothing of
reconciler, so any of them may import it without forming a cycle.

:class:`Model` is the base of every model of the workflow format (camelCase keys, unknown keys
refused, immutable); it lives here because :class:`RetryPolicy` is one of them.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, WithJsonSchema
from pydantic.alias_generators import to_camel

__all__ = ["Duration", "Model", "RetryPolicy", "format_duration", "parse_duration"]

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> timedelta:
    """``"1h30m"``, ``"500ms"``, ``"2s"`` or a number of seconds → :class:`timedelta`."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("a duration is a string like '30s', '5m' or '1h30m'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise ValueError("a duration is a string like '30s', '5m' or '1h30m'")
    text = value.strip()
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        raise ValueError(
            f"invalid duration {value!r}: use e.g. '500ms', '30s', '5m', '1h30m', '1d'"
        )
    return timedelta(seconds=total)


def format_duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    if seconds and seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{seconds}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(\d+(\.\d+)?(ms|s|m|h|d))+$",
            "description": "A duration such as '500ms', '30s', '5m', '1h30m'.",
        }
    ),
]


class Model(BaseModel):
    """Base: camelCase in YAML, unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
    )


class RetryPolicy(Model):
    """How often and how patiently a state's actions are retried on a retryable error."""

    attempts: int = Field(1, ge=1, le=1000, description="Total tries, the first included.")
    delay: Duration = Field(timedelta(seconds=1), description="Wait before the second try.")
    backoff: float = Field(
        2.0, ge=1.0, le=100.0, description="Factor applied to the delay after each try."
    )
    max_delay: Duration = Field(timedelta(minutes=1), description="Upper bound of one wait.")
    jitter: Literal["none", "full", "equal"] = Field(
        "full", description="Randomisation of each wait (AWS 'full' or 'equal' jitter, or none)."
    )
