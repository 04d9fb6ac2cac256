"""The package's own tests: run ``ini.set`` on real files, as reconciler would call it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from acme_ini import IniSet, IniSetRequest, MalformedIni

from reconciler import ActionContext, NotFound, RunInfo


def context(workdir: Path) -> ActionContext:
    return ActionContext(
        run=RunInfo(id="r1", workflow="w"),
        idempotency_key="r1/set/0",
        logger=logging.LoggerAdapter(logging.getLogger("test")),
        workdir=workdir,
    )


async def test_sets_the_key_once_then_reports_nothing_changed(tmp_path: Path) -> None:
    request = IniSetRequest.model_validate(
        {"path": "app.ini", "section": "server", "key": "Port", "value": "8080"}
    )
    first = await IniSet().run(request, context(tmp_path))
    second = await IniSet().run(request, context(tmp_path))
    assert (first.changed, first.previous) == (True, None)
    assert (second.changed, second.previous) == (False, "8080")
    assert "[server]\nPort = 8080" in (tmp_path / "app.ini").read_text()


async def test_named_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.ini").write_text("no section header\n")
    with pytest.raises(MalformedIni):
        await IniSet().run(
            IniSetRequest(path="bad.ini", section="s", key="k", value="v"), context(tmp_path)
        )
    with pytest.raises(NotFound):
        await IniSet().run(
            IniSetRequest(path="none.ini", section="s", key="k", value="v", create=False),
            context(tmp_path),
        )


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="extra"):
        IniSetRequest.model_validate(
            {"path": "a.ini", "section": "s", "key": "k", "value": "v", "valeu": "typo"}
        )
