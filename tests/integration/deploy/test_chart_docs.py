"""The chart's documentation stays true: its README names every value, and every values snippet
in docs/deployment.md installs (schema and render by the real Helm engine)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import helm_python as helm
import pytest
import yaml
from deploy_helpers import CHART_DIR, REPO_ROOT, REPO_URL, load_chart, render

# Values documented as one row because they are free-form Kubernetes objects.
FREE_FORM = {
    "resources",
    "podSecurityContext",
    "securityContext",
    "podAnnotations",
    "podLabels",
    "nodeSelector",
    "affinity",
    "serviceAccount.annotations",
    "service.annotations",
    "metrics.serviceMonitor.labels",
    "metrics.prometheusRule.labels",
}


def leaf_keys(values: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in values.items():
        path = prefix + key
        if isinstance(value, dict) and value and path not in FREE_FORM:
            yield from leaf_keys(value, path + ".")
        else:
            yield path


def documented_keys(readme: str) -> set[str]:
    """Keys in the first column of the values table; `a.b` / `c` means a.b and a.c."""
    keys: set[str] = set()
    for line in readme.splitlines():
        if not line.startswith("| `"):
            continue
        first = line.split("|")[1]
        names = re.findall(r"`([^`]+)`", first)
        parent = names[0].rpartition(".")[0]
        keys.add(names[0])
        keys.update(f"{parent}.{name}" if parent else name for name in names[1:])
    return keys


def test_the_readme_values_table_names_every_value() -> None:
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    documented = documented_keys((CHART_DIR / "README.md").read_text())
    assert set(leaf_keys(values)) <= documented
    assert documented - set(leaf_keys(values)) == set()


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


SNIPPETS = re.findall(
    r"```yaml\n(.*?)```", (REPO_ROOT / "docs" / "deployment.md").read_text(), re.DOTALL
)


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with load_chart() as loaded:
        yield loaded


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_every_values_snippet_of_the_deployment_guide_installs(
    chart: helm.Chart, index: int
) -> None:
    values = merge({"repo": {"url": REPO_URL}}, yaml.safe_load(SNIPPETS[index]))
    chart.validate_schema(values)
    rendered = render(chart, values)
    assert rendered.one("Deployment")
