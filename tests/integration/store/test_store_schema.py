"""Schema: migrations are the only schema source and match the models on both backends."""

from __future__ import annotations

from reconciler.store import Store
from reconciler.store.migrate import head_revision


async def test_orm_metadata_matches_the_migrated_schema(store: Store) -> None:
    assert await store.schema_diff() == []
    assert await store.schema_revision() == head_revision()
