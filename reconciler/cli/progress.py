"""Progress bars for long one-shot work (reading and checking thousands of files), on a
terminal only.

``validate``, ``plan``, ``apply`` and ``test`` read every workflow file and check every workflow
before they print anything; over thousands of files that takes seconds, during which a person
at a terminal should see that something happens. :func:`progress_bars` gives them a
``step(description)`` whose callback ``(done, total)`` fits the loader's and the validator's
``progress`` argument. The bars are drawn on stderr, only when stderr is a terminal, and vanish
when the work is done; piped or redirected output never carries them, so scripts and logs see
exactly what they saw before.

Called by: :mod:`reconciler.cli.validate` and :mod:`reconciler.cli.workspace`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from reconciler.cli.app import err_console

Step = Callable[[str], Callable[[int, int], None]]
"""``step(description)``: the ``(done, total)`` callback of one bar."""

MIN_ITEMS = 50
"""Fewer items than this draw no bar: the work is over before a bar would mean anything."""


def _silent(_description: str) -> Callable[[int, int], None]:
    def ignore(_done: int, _total: int) -> None:
        return None

    return ignore


@contextmanager
def progress_bars(*, enabled: bool | None = None) -> Iterator[Step]:
    """Bars on stderr while the block runs (``enabled`` ``None``: when stderr is a terminal)."""
    show = err_console.is_terminal if enabled is None else enabled
    if not show:
        yield _silent
        return
    # rich's progress machinery: only where bars may be drawn, not in every piped command
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bars:

        def step(description: str) -> Callable[[int, int], None]:
            task = None

            def advance(done: int, total: int) -> None:
                nonlocal task
                if total < MIN_ITEMS:
                    return
                if task is None:
                    task = bars.add_task(description, total=total)
                bars.update(task, completed=done, total=total)

            return advance

        yield step
