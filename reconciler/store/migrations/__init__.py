"""Alembic migration scripts of the reconciler store (a package so that they ship)."""
