"""The daemon's store keeps a connection open per run in flight, so runs do not queue for one."""

from __future__ import annotations

from pathlib import Path

from reconciler.daemon.settings import DaemonSettings
from reconciler.store import Store


async def test_the_pool_keeps_one_connection_per_run_in_flight_and_four_more(
    tmp_path: Path,
) -> None:
    settings = DaemonSettings.load(repo=str(tmp_path), data_dir=tmp_path, max_concurrent_runs=24)
    assert settings.store_connections() == 28

    store = await Store.open(None, data_dir=tmp_path, connections=settings.store_connections())
    try:
        assert store._engine.pool.size() == 28
        await store.list_statuses()  # and it works
    finally:
        await store.close()


async def test_a_one_shot_store_keeps_the_default_pool(tmp_path: Path) -> None:
    store = await Store.open(None, data_dir=tmp_path)
    try:
        assert store._engine.pool.size() == 5
    finally:
        await store.close()
