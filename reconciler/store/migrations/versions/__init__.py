"""Alembic revisions of the store schema, oldest first (a package so that they ship)."""
