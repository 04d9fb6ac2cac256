"""Change windows: which apply, whether runs may start at an instant, and when that changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.config.models import OperatorWindow, SyncWindow, Workflow
from reconciler.daemon.windows import (
    AppliedWindow,
    applicable,
    blocked_at,
    evaluate,
    is_open,
    load_windows_file,
    open_periods,
)
from reconciler.errors import ConfigError


def window(kind: str, schedule: str, duration: str, **more: Any) -> SyncWindow:
    return SyncWindow.model_validate(
        {"kind": kind, "schedule": schedule, "duration": duration, **more}
    )


def applied(*windows: SyncWindow) -> list[AppliedWindow]:
    return [AppliedWindow(w, f"spec.windows[{i}]") for i, w in enumerate(windows)]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def workflow(name: str = "motd", *, labels: dict[str, str] | None = None, **spec: Any) -> Workflow:
    return Workflow.model_validate(
        {
            "apiVersion": "reconciler/v1",
            "kind": "Workflow",
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {"start": "done", "states": {"done": {"end": "success"}}, **spec},
        }
    )


NIGHTLY = window("allow", "0 22 * * *", "2h")
"""Open 22:00-00:00 UTC every day."""
FREEZE = window("deny", "0 12 * * *", "1h", description="lunch freeze")
"""Open 12:00-13:00 UTC every day."""


# -- one window ---------------------------------------------------------------------------------


def test_a_window_is_open_from_its_opening_for_its_duration_and_closed_at_its_end() -> None:
    assert not is_open(FREEZE, at("2026-05-04T11:59:59"))
    assert is_open(FREEZE, at("2026-05-04T12:00:00"))
    assert is_open(FREEZE, at("2026-05-04T12:59:59"))
    assert not is_open(FREEZE, at("2026-05-04T13:00:00"))


def test_a_window_reads_its_schedule_in_its_time_zone_across_a_dst_change() -> None:
    # 09:00 in Berlin is 08:00 UTC in winter (CET) and 07:00 UTC in summer (CEST); the clocks
    # went forward on 2026-03-29
    berlin = window("deny", "0 9 * * *", "1h", timeZone="Europe/Berlin")
    periods = open_periods(berlin, at("2026-03-28T00:00:00"))
    assert [next(periods) for _ in range(2)] == [
        (at("2026-03-28T08:00:00"), at("2026-03-28T09:00:00")),
        (at("2026-03-29T07:00:00"), at("2026-03-29T08:00:00")),
    ]
    assert is_open(berlin, at("2026-03-29T07:30:00"))
    assert not is_open(berlin, at("2026-03-29T08:30:00"))


def test_a_duration_spanning_the_dst_change_is_elapsed_time() -> None:
    # opens 01:00 Berlin (00:00 UTC) the night the clocks go forward at 02:00: three hours of
    # elapsed time end at 03:00 UTC (05:00 local), not at 04:00 local
    berlin = window("deny", "0 1 * * *", "3h", timeZone="Europe/Berlin")
    first = next(open_periods(berlin, at("2026-03-29T00:00:00")))
    assert first == (at("2026-03-29T00:00:00"), at("2026-03-29T03:00:00"))


def test_openings_closer_than_the_duration_merge_into_one_open_period() -> None:
    # opens every 6 hours for 8 hours: never closes
    always = window("allow", "0 */6 * * *", "8h")
    opens, closes = next(open_periods(always, at("2026-05-04T00:00:00")))
    assert closes is None and opens <= at("2026-05-04T00:00:00")
    # opens at 00:00 and 02:00 (Mondays) for 3 hours: one period 00:00-05:00
    twice = window("deny", "0 0,2 * * 1", "3h")
    assert next(open_periods(twice, at("2026-05-04T00:00:00"))) == (
        at("2026-05-04T00:00:00"),
        at("2026-05-04T05:00:00"),
    )


# -- the verdict --------------------------------------------------------------------------------


def test_no_window_means_no_verdict() -> None:
    assert evaluate([], at("2026-05-04T12:30:00")) is None


def test_allow_only_blocks_outside_the_window_and_names_the_next_opening() -> None:
    verdict = evaluate(applied(NIGHTLY), at("2026-05-04T12:00:00"))
    assert verdict is not None
    assert verdict.blocked
    assert verdict.until == at("2026-05-04T22:00:00")
    assert "allow window spec.windows[0]" in verdict.describe()
    assert not verdict.manual_sync


def test_allow_only_lets_runs_start_inside_the_window_until_it_closes() -> None:
    verdict = evaluate(applied(NIGHTLY), at("2026-05-04T23:00:00"))
    assert verdict is not None
    assert not verdict.blocked
    assert verdict.until == at("2026-05-05T00:00:00")
    assert [w.source for w in verdict.windows] == ["spec.windows[0]"]


def test_deny_only_blocks_while_open_and_lets_runs_start_otherwise() -> None:
    inside = evaluate(applied(FREEZE), at("2026-05-04T12:15:00"))
    outside = evaluate(applied(FREEZE), at("2026-05-04T14:00:00"))
    assert inside is not None and inside.blocked
    assert inside.until == at("2026-05-04T13:00:00")
    assert '"lunch freeze"' in inside.describe()
    assert outside is not None and not outside.blocked
    assert outside.until == at("2026-05-05T12:00:00")  # when it blocks next


def test_an_open_deny_window_wins_over_an_open_allow_window() -> None:
    day = window("allow", "0 8 * * *", "10h")
    verdict = evaluate(applied(day, FREEZE), at("2026-05-04T12:30:00"))
    assert verdict is not None and verdict.blocked
    assert [w.window.kind for w in verdict.windows] == ["deny"]
    assert verdict.until == at("2026-05-04T13:00:00")
    assert not blocked_at(applied(day, FREEZE), at("2026-05-04T13:00:00"))


def test_the_next_opening_skips_an_allow_window_covered_by_a_deny_window() -> None:
    # allowed 12:00-14:00, denied 11:00-13:00: runs may start at 13:00
    allow = window("allow", "0 12 * * *", "2h")
    deny = window("deny", "0 11 * * *", "2h")
    verdict = evaluate(applied(allow, deny), at("2026-05-04T10:00:00"))
    assert verdict is not None and verdict.blocked
    assert verdict.until == at("2026-05-04T13:00:00")


def test_overlapping_allow_windows_keep_runs_allowed_until_the_last_one_closes() -> None:
    morning = window("allow", "0 8 * * *", "3h")
    late_morning = window("allow", "0 10 * * *", "3h")
    verdict = evaluate(applied(morning, late_morning), at("2026-05-04T09:00:00"))
    assert verdict is not None and not verdict.blocked
    assert verdict.until == at("2026-05-04T13:00:00")


def test_a_window_that_never_closes_has_no_until() -> None:
    verdict = evaluate(applied(window("deny", "* * * * *", "1h")), at("2026-05-04T09:00:00"))
    assert verdict is not None and verdict.blocked
    assert verdict.until is None


def test_a_manual_sync_may_run_only_when_every_blocking_window_allows_it() -> None:
    lenient = window("deny", "0 12 * * *", "1h", manualSync=True)
    strict = window("deny", "30 12 * * *", "1h")
    now = at("2026-05-04T12:15:00")
    alone = evaluate(applied(lenient), now)
    assert alone is not None and alone.blocked and alone.manual_sync
    both = evaluate(applied(lenient, strict), at("2026-05-04T12:45:00"))
    assert both is not None and both.blocked and not both.manual_sync
    # the strict window is not open yet: only the lenient one blocks
    assert evaluate(applied(lenient, strict), now).manual_sync  # type: ignore[union-attr]


# -- which windows apply ------------------------------------------------------------------------


def operator(**more: Any) -> OperatorWindow:
    return OperatorWindow.model_validate(
        {"kind": "deny", "schedule": "0 0 * * *", "duration": "1h", **more}
    )


def test_operator_windows_apply_by_name_glob_and_labels_after_the_workflows_own() -> None:
    wf = workflow(
        "db-backup",
        labels={"team": "data", "tier": "prod"},
        windows=[{"kind": "allow", "schedule": "0 1 * * *", "duration": "1h"}],
    )
    everyone = operator()
    by_name = operator(selector={"names": ["web-*", "db-*"]})
    by_label = operator(selector={"matchLabels": {"tier": "prod"}})
    other_label = operator(selector={"matchLabels": {"tier": "dev"}})
    both_must_hold = operator(selector={"names": ["db-*"], "matchLabels": {"team": "web"}})
    found = applicable(wf, [everyone, by_name, by_label, other_label, both_must_hold])
    assert [w.source for w in found] == [
        "spec.windows[0]",
        "windows-file[0]",
        "windows-file[1]",
        "windows-file[2]",
    ]


# -- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("schedule", "0 25 * * *", "invalid cron"),
        ("schedule", "0 1 * *", "5 fields"),
        ("timeZone", "Mars/Olympus", "unknown time zone"),
        ("duration", "0s", "longer than zero"),
        ("kind", "maybe", "allow"),
    ],
)
def test_a_bad_window_field_is_refused_with_its_name(field: str, value: str, words: str) -> None:
    body = {"kind": "deny", "schedule": "0 1 * * *", "duration": "1h", field: value}
    with pytest.raises(ValueError) as refused:
        SyncWindow.model_validate(body)
    assert words in str(refused.value)
    assert field in str(refused.value)


def test_the_windows_file_is_read_with_selectors(tmp_path: Path) -> None:
    path = tmp_path / "windows.yaml"
    path.write_text(
        "- kind: deny\n"
        "  schedule: '0 18 * * 5'\n"
        "  duration: 64h\n"
        "  timeZone: Europe/Paris\n"
        "  description: weekend freeze\n"
        "  selector: {matchLabels: {tier: prod}}\n"
    )
    (loaded,) = load_windows_file(path)
    assert loaded.duration == timedelta(hours=64)
    assert loaded.selector is not None and loaded.selector.match_labels == {"tier": "prod"}


def test_a_bad_windows_file_is_refused_naming_the_file_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "windows.yaml"
    path.write_text(
        "- {kind: deny, schedule: '0 18 * * 5', duration: 1h}\n"
        "- {kind: deny, schedule: '0 18 * * 5', duration: 1h, timeZone: Nowhere/Land}\n"
    )
    with pytest.raises(ConfigError) as refused:
        load_windows_file(path)
    assert str(path) in str(refused.value)
    assert "[1].timeZone" in str(refused.value)
    assert "unknown time zone" in str(refused.value)


def test_a_windows_file_that_is_not_a_list_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "windows.yaml"
    path.write_text("kind: deny\n")
    with pytest.raises(ConfigError, match="windows file"):
        load_windows_file(path)


def test_weekdays_are_numbered_as_in_cron_sunday_being_zero_and_seven() -> None:
    # 2026-05-04 is a Monday: `1` is Monday, `1-5` Monday to Friday, `0` and `7` Sunday
    monday = at("2026-05-04T00:30:00")
    assert is_open(window("deny", "0 0 * * 1", "1h"), monday)
    assert is_open(window("deny", "0 0 * * 1-5", "1h"), monday)
    assert not is_open(window("deny", "0 0 * * 2-6", "1h"), monday)
    assert not is_open(window("deny", "0 0 * * 0", "1h"), monday)
    sunday = at("2026-05-03T00:30:00")
    assert is_open(window("deny", "0 0 * * 7", "1h"), sunday)
    assert is_open(window("deny", "0 0 * * 5-7", "1h"), sunday)
    assert is_open(window("deny", "0 0 * * */2", "1h"), sunday)  # sun, tue, thu, sat
    assert not is_open(window("deny", "0 0 * * */2", "1h"), monday)
    assert is_open(window("deny", "0 0 * * mon,wed", "1h"), monday)


def test_the_json_schema_documents_spec_windows() -> None:
    schema = Workflow.model_json_schema(by_alias=True)
    window = schema["$defs"]["SyncWindow"]
    assert set(window["required"]) == {"kind", "schedule", "duration"}
    assert set(window["properties"]) == {
        "kind",
        "schedule",
        "duration",
        "timeZone",
        "manualSync",
        "description",
    }
    assert "cron" in window["properties"]["schedule"]["description"]
    assert schema["$defs"]["Spec"]["properties"]["windows"]["items"] == {
        "$ref": "#/$defs/SyncWindow"
    }


def test_an_opening_in_the_hour_skipped_by_dst_still_happens_that_day() -> None:
    # 02:30 does not exist in Berlin on 2026-03-29 (02:00 CET became 03:00 CEST)
    skipped = window("deny", "30 2 * * *", "1h", timeZone="Europe/Berlin")
    periods = open_periods(skipped, at("2026-03-28T00:00:00"))
    opens = [next(periods)[0] for _ in range(3)]
    assert [o.date().isoformat() for o in opens] == ["2026-03-28", "2026-03-29", "2026-03-30"]
    assert opens[2] == at("2026-03-30T00:30:00")  # 02:30 CEST
