"""``python -m reconciler``: the same command as the ``reconciler`` script (see reconciler.cli)."""

from __future__ import annotations

from reconciler.cli import main

if __name__ == "__main__":
    main()
