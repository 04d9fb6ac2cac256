"""Drift-check scheduling: one job per workflow, interval or cron, only replaced on change."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from reconciler.config.models import Workflow
from reconciler.daemon.scheduler import DriftScheduler, schedule_of, trigger_for
from tests.support.waiting import until_async


def workflow(name: str, **spec: Any) -> Workflow:
    return Workflow.model_validate(
        {
            "apiVersion": "reconciler/v1",
            "kind": "Workflow",
            "metadata": {"name": name},
            "spec": {"start": "done", "states": {"done": {"end": "success"}}, **spec},
        }
    )


def test_schedule_comes_from_interval_cron_or_the_default() -> None:
    five = timedelta(minutes=5)
    assert schedule_of(workflow("a", interval="30s"), default_interval=five) == ("interval", "30.0")
    assert schedule_of(workflow("b", cron="*/10 * * * *"), default_interval=five) == (
        "cron",
        "*/10 * * * *",
    )
    assert schedule_of(workflow("c"), default_interval=five) == ("interval", "300.0")
    assert schedule_of(workflow("d"), default_interval=None) is None


@pytest.mark.timeout(5)
async def test_due_interval_job_reports_the_workflow_name() -> None:
    due: list[str] = []
    scheduler = DriftScheduler(due.append)
    scheduler.sync({"motd": workflow("motd", interval="20ms")})
    scheduler.start()
    try:
        await until_async(lambda: due, 4, "the job to report motd as due")
    finally:
        scheduler.shutdown()
    assert due and set(due) == {"motd"}


async def test_cron_workflow_is_next_checked_on_its_cron_boundary() -> None:
    scheduler = DriftScheduler(lambda _name: None)
    scheduler.sync({"nightly": workflow("nightly", cron="0 3 * * *")})
    scheduler.start()
    try:
        when = scheduler.next_check("nightly")
    finally:
        scheduler.shutdown()
    assert when is not None
    assert (when.hour, when.minute, when.second) == (3, 0, 0)
    assert when > datetime.now(UTC)


async def test_unchanged_schedule_keeps_its_job_and_removed_workflow_loses_it() -> None:
    scheduler = DriftScheduler(lambda _name: None)
    scheduler.start()
    try:
        scheduler.sync({"a": workflow("a", interval="1h"), "b": workflow("b", interval="1h")})
        first = scheduler.next_check("a")
        # time passing is the test: a job made again now would be due 20 ms later than ``first``
        await asyncio.sleep(0.02)
        scheduler.sync({"a": workflow("a", interval="1h", suspend=False)})
        assert scheduler.next_check("a") == first
        assert scheduler.next_check("b") is None
        assert set(scheduler.scheduled) == {"a"}
        scheduler.sync({"a": workflow("a", interval="2h")})
        assert scheduler.scheduled["a"] == ("interval", "7200.0")
    finally:
        scheduler.shutdown()


async def test_invalid_cron_is_reported_not_raised() -> None:
    scheduler = DriftScheduler(lambda _name: None)
    scheduler.sync({"bad": workflow("bad", cron="61 * * * *")})
    assert "bad" in scheduler.problems
    assert scheduler.next_check("bad") is None


@pytest.mark.parametrize(
    ("weekdays", "first"),
    [("1", 0), ("1-5", 0), ("0", 6), ("7", 6), ("sat,sun", 5)],
)
def test_cron_weekdays_are_numbered_as_in_cron(weekdays: str, first: int) -> None:
    # Monday 2026-12-07 00:00 UTC is the first instant looked at; 1 is Monday, 0 and 7 Sunday
    trigger = trigger_for(("cron", f"0 9 * * {weekdays}"))
    start = datetime(2026, 12, 7, tzinfo=UTC)
    fire = trigger.get_next_fire_time(None, start)
    assert fire is not None
    assert fire.weekday() == first and fire.hour == 9
