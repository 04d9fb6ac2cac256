"""Command-line entry point; see :mod:`reconciler.cli.app` for the conventions."""

from __future__ import annotations

from reconciler.cli.app import app

# Each module registers its commands on ``app`` when imported.
# (one import per command module; keep sorted)


def main() -> None:
    app()


__all__ = ["app", "main"]
