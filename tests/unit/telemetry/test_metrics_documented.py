"""Every metric the daemon exposes has its row in docs/operations.md, the page alerts and
dashboards are written from, and every row names a metric that exists."""

from __future__ import annotations

import re
from pathlib import Path

from reconciler.telemetry.metrics import REGISTRY

OPERATIONS = Path(__file__).resolve().parents[3] / "docs" / "operations.md"


def test_the_metrics_table_names_exactly_the_metrics_served() -> None:
    served = {
        family.name + ("_total" if family.type == "counter" else "")
        for family in REGISTRY.collect()
        if family.name.startswith("reconciler_")
    }
    documented = set(re.findall(r"^\| `(reconciler_\w+)` \|", OPERATIONS.read_text(), re.M))
    assert documented == served
