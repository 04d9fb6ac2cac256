"""``reconciler plan --ref``: a preview of a branch or commit against a base, before the merge.

Both refs are read from git objects (a local repository, or a remote one cloned bare into a
temporary directory that is removed afterwards): the user's working tree and index are never
touched. The workflows at ``--ref`` are validated as the daemon would (``path:line:col`` for
every error), compared with those at ``--base`` by spec digest (new, changed, removed,
unchanged), and every valid workflow's read-only ``observe`` probe runs, as plain ``plan``
does; the planner then says whether each would run and why. Nothing runs a state.

Called by: :func:`reconciler.cli.converge.plan`. Calls: the git sources' ``read_ref``, the
target selection and :func:`reconciler.daemon.preview.preview_target`.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from reconciler.cli.app import OutputFormat, console, fail
from reconciler.cli.converge import _history
from reconciler.clock import utcnow
from reconciler.config.snapshot import LoadedWorkflow
from reconciler.daemon.preview import PreviewContext, preview_against
from reconciler.daemon.revision import load_snapshot
from reconciler.daemon.target import select_target
from reconciler.daemon.windows import verdict_for
from reconciler.engine.journal import MemoryJournal
from reconciler.engine.runner import Engine, Observation
from reconciler.errors import ConfigError, SourceError
from reconciler.plugin import PluginRegistry
from reconciler.previews import PreviewReport
from reconciler.secrets.resolver import resolver_from_env
from reconciler.sources import open_source

_STYLE = {"new": "green", "changed": "yellow", "removed": "red", "unchanged": "dim"}


def plan_ref(
    ref: str,
    *,
    base: str,
    repo: str,
    only: list[str] | None,
    output: OutputFormat,
    data_dir: Path | None,
    store: str | None,
) -> PreviewReport:
    """Preview ``ref`` against ``base`` in ``repo``, print it, and return it."""
    registry = PluginRegistry.discover()
    try:
        secrets = resolver_from_env()
    except ConfigError as exc:
        raise fail(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="reconciler-plan-") as tmp:
        try:
            source = open_source(repo, data_dir=Path(tmp))
        except (SourceError, ValueError) as exc:
            raise fail(str(exc)) from None
        read = getattr(source, "read_ref", None)
        if read is None:
            raise fail(f"{repo} is not a git repository: --ref needs one")

        async def go() -> PreviewReport:
            try:
                head_rev = await read(ref)
                base_rev = await read(base)
            except SourceError as exc:
                raise fail(str(exc)) from None
            workdir = Path.cwd()
            before = select_target(load_snapshot(base_rev, None), registry, workdir=workdir)
            head = select_target(
                load_snapshot(head_rev, None), registry, previous=before, workdir=workdir
            )
            engine = Engine(
                registry,
                journal=MemoryJournal(),
                workflows={n: lw.workflow for n, lw in head.valid.items()},
                workdir=workdir,
                secrets=secrets,
            )

            def observe(lw: LoadedWorkflow) -> asyncio.Future[Observation]:
                return asyncio.ensure_future(engine.observe(lw.workflow))

            try:
                async with _history(data_dir, store) as history:
                    context = PreviewContext(
                        statuses=history.stored,
                        observe=observe,
                        now=utcnow,
                        window=lambda lw, at: verdict_for(lw.workflow, (), at),
                        limit=1_000_000,
                        timeout=24 * 3600.0,
                        observe_unchanged=True,
                    )
                    return await preview_against(
                        head, before, context, ref=ref, base_revision=base_rev.id
                    )
            finally:
                await registry.close()

        report = asyncio.run(go())
    if only:
        report.workflows = [w for w in report.workflows if w.name in set(only)]
    _emit(report, output)
    return report


def _emit(report: PreviewReport, output: OutputFormat) -> None:
    if output is OutputFormat.json:
        print(json.dumps(report.as_dict()))
        return
    for problem in report.problems:
        console.print(f"[red]{escape(problem)}[/red]", highlight=False)
    table = Table(
        title=f"plan {report.ref} ({report.revision[:12]}) against {report.base[:12]}",
        title_justify="left",
    )
    for column in ("workflow", "change", "would run", "sync", "detail"):
        table.add_column(column, overflow="fold")
    for w in report.workflows:
        style = _STYLE.get(w.change.value, "")
        would = "invalid" if not w.valid else {None: "-", True: "yes", False: "no"}[w.would_run]
        fields = "; ".join(
            f"{d['path'] or '(root)'}: {json.dumps(d['observed'])} → {json.dumps(d['desired'])}"
            for d in w.diff
        )
        detail = " — ".join(x for x in (w.reason, w.probe_error, fields) if x)
        table.add_row(
            w.name, f"[{style}]{w.change.value}[/{style}]", would, w.sync or "-", escape(detail)
        )
    console.print(table)
