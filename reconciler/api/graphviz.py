"""The state diagram as SVG, laid out by Graphviz's ``dot``, for the page.

A hand-written layout overlaps labels and draws edges through states; ``dot`` lays the same
diagram out cleanly (``reconciler graph --format dot`` is its input). Called by the graph route
of :mod:`reconciler.api.routes.workflows` for ``format=svg``.

What callers may rely on: ``dot`` runs as a plain subprocess with a fixed argument list (never
a shell); the DOT text, built by :func:`reconciler.engine.graph.to_dot` with every name and
label quoted, goes in on stdin; a run that outlives :data:`DOT_TIMEOUT` seconds is killed.
Without ``dot`` on ``PATH``, or when it fails, :class:`GraphvizUnavailable` says why and the
page draws the diagram itself. Answers are kept for the same DOT text (a few dozen), so a page
refreshing every few seconds does not start ``dot`` each time.
"""

from __future__ import annotations

import asyncio
import shutil
from collections import OrderedDict

from reconciler.errors import ReconcilerError

DOT_TIMEOUT = 5.0
"""Seconds a ``dot`` run may take before it is killed."""

_KEPT = 64
_svgs: OrderedDict[str, str] = OrderedDict()


class GraphvizUnavailable(ReconcilerError):
    """``dot`` is not installed, failed, or took too long; the message says which."""


async def dot_to_svg(dot: str, *, seconds: float = DOT_TIMEOUT) -> str:
    """The SVG ``dot`` draws for the DOT text ``dot``."""
    executable = shutil.which("dot")
    if executable is None:
        raise GraphvizUnavailable("Graphviz's dot is not installed on the daemon's host")
    if dot in _svgs:
        _svgs.move_to_end(dot)
        return _svgs[dot]
    process = await asyncio.create_subprocess_exec(
        executable,
        "-Tsvg",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(dot.encode()), seconds)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise GraphvizUnavailable(f"dot took more than {seconds:g}s") from None
    if process.returncode != 0:
        message = err.decode(errors="replace").strip()[:300]
        raise GraphvizUnavailable(f"dot failed (exit {process.returncode}): {message}")
    svg = out.decode()
    _svgs[dot] = svg
    if len(_svgs) > _KEPT:
        _svgs.popitem(last=False)
    return svg
