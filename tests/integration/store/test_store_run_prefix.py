"""Short run ids: :meth:`Store.run_ids_starting_with` on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from reconciler.engine.journal import RunRecord
from reconciler.store import Store

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
IDS = [
    "884642fb00000000000000000000aaaa",
    "884642fb00000000000000000000bbbb",
    "8846ffff00000000000000000000cccc",
    "88490000000000000000000000000000",
    "884a0000000000000000000000000000",
]


async def _with_runs(store: Store) -> None:
    for run_id in IDS:
        await store.run_started(RunRecord(id=run_id, workflow="wf", started_at=T0))


async def test_a_unique_prefix_finds_exactly_its_run(store: Store) -> None:
    await _with_runs(store)
    assert await store.run_ids_starting_with("8846ff") == [IDS[2]]
    assert await store.run_ids_starting_with(IDS[3]) == [IDS[3]]


async def test_an_ambiguous_prefix_returns_the_candidates_in_id_order_up_to_the_limit(
    store: Store,
) -> None:
    await _with_runs(store)
    assert await store.run_ids_starting_with("884642fb") == IDS[:2]
    assert await store.run_ids_starting_with("8846") == IDS[:3]
    assert await store.run_ids_starting_with("8846", limit=2) == IDS[:2]


async def test_a_prefix_ending_in_9_does_not_reach_the_ids_after_it(store: Store) -> None:
    await _with_runs(store)
    assert await store.run_ids_starting_with("8849") == [IDS[3]]
    assert await store.run_ids_starting_with("884a") == [IDS[4]]


async def test_unknown_empty_and_wildcard_prefixes_match_nothing(store: Store) -> None:
    await _with_runs(store)
    assert await store.run_ids_starting_with("7777") == []
    assert await store.run_ids_starting_with("") == []
    assert await store.run_ids_starting_with("88%") == []
    assert await store.run_ids_starting_with("8846_") == []
