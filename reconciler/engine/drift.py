"""Drift: is what ``observe`` saw a superset of what ``desired`` asks for?

Called by: :meth:`reconciler.engine.runner.Engine.observe`, which calls :func:`diff_subset` to turn a
workflow's ``desired`` value and the probe's response into a list of :class:`FieldDiff`, which
``plan`` prints and the daemon's planner uses to decide Synced/OutOfSync. Pure functions only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_MISSING_TEXT = "<missing>"


@dataclass(frozen=True)
class FieldDiff:
    """One place where observed differs from desired.

    ``path`` is a dotted/indexed path such as ``rows[0].owner`` (empty for the root);
    ``observed`` is ``None`` when the key is missing altogether (``missing`` tells them apart).
    """

    path: str
    desired: Any
    observed: Any
    missing: bool = False

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able form for the journal, the API and ``plan --output json``."""
        return {
            "path": self.path,
            "desired": self.desired,
            "observed": _MISSING_TEXT if self.missing else self.observed,
        }


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def diff_subset(desired: Any, observed: Any, *, path: str = "") -> list[FieldDiff]:
    """Every difference that stops ``desired`` from being a subset of ``observed``.

    Rules: a mapping matches when every desired key exists in observed and matches recursively
    (extra observed keys are fine); a list matches when it has the same length and each element
    matches element-wise; anything else must be equal. An empty result means in sync.
    """
    if isinstance(desired, Mapping):
        if not isinstance(observed, Mapping):
            return [FieldDiff(path, desired, observed)]
        out: list[FieldDiff] = []
        for key, want in desired.items():
            sub = _join(path, str(key))
            if key not in observed:
                out.append(FieldDiff(sub, want, None, missing=True))
            else:
                out.extend(diff_subset(want, observed[key], path=sub))
        return out
    if isinstance(desired, list | tuple):
        if not isinstance(observed, list | tuple) or len(observed) != len(desired):
            return [FieldDiff(path, desired, observed)]
        out = []
        for i, (want, got) in enumerate(zip(desired, observed, strict=True)):
            out.extend(diff_subset(want, got, path=f"{path}[{i}]"))
        return out
    if _equal(desired, observed):
        return []
    return [FieldDiff(path, desired, observed)]


def _equal(desired: Any, observed: Any) -> bool:
    # bool is an int in Python; ``true`` must not equal ``1`` in a desired state.
    if isinstance(desired, bool) or isinstance(observed, bool):
        return isinstance(desired, bool) and isinstance(observed, bool) and desired is observed
    return bool(desired == observed)
