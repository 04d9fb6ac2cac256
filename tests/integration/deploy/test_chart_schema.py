"""charts/reconciler/values.schema.json: nonsense values fail `helm install` with a clear message.

Helm checks the values against the schema before it renders anything; these tests ask the real
engine (``Chart.validate_schema``, and ``render`` for the install path) and read its message.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import helm_python as helm
import pytest
from deploy_helpers import REPO_URL, VALUE_SETS, load_chart


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with load_chart() as loaded:
        yield loaded


def with_repo(**values: Any) -> dict[str, Any]:
    return {"repo": {"url": REPO_URL}, **values}


# (values, what the message must say) — each a mistake a user could make.
BAD_VALUES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "two replicas on SQLite": (
        with_repo(replicaCount=2),
        ["/store/type", "value must be 'postgresql'"],
    ),
    "three replicas on SQLite, said explicitly": (
        with_repo(replicaCount=3, store={"type": "sqlite"}),
        ["/store/type", "value must be 'postgresql'"],
    ),
    "a misspelt top-level key": (
        with_repo(replicas=3),
        ["additional properties 'replicas' not allowed"],
    ),
    "a misspelt nested key": (
        with_repo(store={"type": "sqlite", "sqlite": {"persistance": {"enabled": True}}}),
        ["/store/sqlite", "additional properties 'persistance' not allowed"],
    ),
    "an unknown store": (
        with_repo(store={"type": "mysql"}),
        ["/store/type", "'sqlite'", "'postgresql'"],
    ),
    "an unknown log level": (
        with_repo(daemon={"logLevel": "verbose"}),
        ["/daemon/logLevel", "'debug'", "'error'"],
    ),
    "a repository that is not a URL": (
        {"repo": {"url": "maintenance"}},
        ["/repo/url", "does not match pattern"],
    ),
    "PostgreSQL without the Secret of its URL": (
        with_repo(replicaCount=3, store={"type": "postgresql"}),
        ["/store/postgresql/existingSecret", "minLength"],
    ),
    "SSH credentials without their Secret": (
        with_repo(git={"credentials": {"type": "ssh"}}),
        ["/git/credentials/existingSecret", "minLength"],
    ),
    "an unknown kind of git credentials": (
        with_repo(git={"credentials": {"type": "password", "existingSecret": "git"}}),
        ["/git/credentials/type", "'token'", "'ssh'"],
    ),
    "Vault Kubernetes auth without a role": (
        with_repo(vault={"enabled": True, "address": "https://vault:8200"}),
        ["/vault/kubernetes/role", "minLength"],
    ),
    "Vault without an address": (
        with_repo(vault={"enabled": True, "kubernetes": {"role": "reconciler"}}),
        ["/vault/address", "minLength"],
    ),
    "an unknown Vault auth method": (
        with_repo(vault={"enabled": True, "address": "https://vault:8200", "authMethod": "ldap"}),
        ["/vault/authMethod", "'kubernetes'"],
    ),
    "an Ingress without hosts": (
        with_repo(ingress={"enabled": True}),
        ["/ingress/hosts", "minItems"],
    ),
    "an Ingress path that is not absolute": (
        with_repo(ingress={"enabled": True, "hosts": [{"paths": [{"path": "hooks"}]}]}),
        ["/ingress/hosts/0/paths/0/path", "does not match pattern"],
    ),
    "an HTTPRoute attached to no Gateway": (
        with_repo(httpRoute={"enabled": True}),
        ["/httpRoute/parentRefs", "minItems"],
    ),
    "a CA bundle from a ConfigMap and a Secret at once": (
        with_repo(caBundle={"configMap": "corporate-ca", "secret": "corporate-ca"}),
        ["/caBundle/secret", "maxLength"],
    ),
    "an extra volume mount at a relative path": (
        with_repo(extraVolumeMounts=[{"name": "x", "mountPath": "etc/x"}]),
        ["/extraVolumeMounts/0/mountPath", "does not match pattern"],
    ),
    "an envFrom entry naming neither a ConfigMap nor a Secret": (
        with_repo(daemon={"extraEnvFrom": [{"prefix": "X_"}]}),
        ["/daemon/extraEnvFrom/0"],
    ),
    "a poll interval that is not a duration": (
        with_repo(repo={"url": REPO_URL, "pollInterval": "often"}),
        ["/repo/pollInterval", "does not match pattern"],
    ),
    "no concurrent runs": (
        with_repo(daemon={"maxConcurrentRuns": 0}),
        ["/daemon/maxConcurrentRuns", "minimum"],
    ),
    "a relative file root": (
        with_repo(daemon={"fileRoots": ["work"]}),
        ["/daemon/fileRoots/0", "does not match pattern"],
    ),
    "a file root with a comma (the variable's separator)": (
        with_repo(daemon={"fileRoots": ["/work,/etc"]}),
        ["/daemon/fileRoots/0", "does not match pattern"],
    ),
    "an empty plugin glob": (
        with_repo(daemon={"allowPlugins": [""]}),
        ["/daemon/allowPlugins/0"],
    ),
    "a zero read cap": (
        with_repo(daemon={"maxFileBytes": 0}),
        ["/daemon/maxFileBytes", "minimum"],
    ),
    "a zero expression budget": (
        with_repo(daemon={"expressionCostLimit": 0}),
        ["/daemon/expressionCostLimit", "minimum"],
    ),
    "verifying signatures without the allowed signers": (
        with_repo(signatures={"verify": True}),
        ["/signatures/allowedSigners/configMap"],
    ),
    "api docs as text": (
        with_repo(daemon={"apiDocs": "yes"}),
        ["/daemon/apiDocs", "boolean"],
    ),
    "a relative runbook link (Alertmanager and Slack cannot open it)": (
        with_repo(metrics={"prometheusRule": {"runbookBaseUrl": "docs/operations.md"}}),
        ["/metrics/prometheusRule/runbookBaseUrl", "does not match pattern"],
    ),
    "a runbook page with an anchor (each alert adds its own)": (
        with_repo(
            metrics={"prometheusRule": {"runbookBaseUrl": "https://x.example.com/ops.md#alerts"}}
        ),
        ["/metrics/prometheusRule/runbookBaseUrl", "does not match pattern"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_the_schema_rejects_nonsense_with_a_message_naming_the_value(
    chart: helm.Chart, case: str
) -> None:
    values, expected = BAD_VALUES[case]
    with pytest.raises(helm.HelmValuesError) as rejected:
        chart.validate_schema(values)
    message = str(rejected.value)
    for part in expected:
        assert part in message, f"{case}: {part!r} not in {message!r}"
    # `helm install` hits the same check before rendering anything.
    with pytest.raises(helm.HelmError, match="schema"):
        chart.render(values, name="ops", namespace="automation")


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_the_schema_accepts_every_documented_value_set(chart: helm.Chart, name: str) -> None:
    chart.validate_schema(VALUE_SETS[name])


def test_the_schema_accepts_the_chart_defaults_plus_a_repository(chart: helm.Chart) -> None:
    chart.validate_schema(chart.merge_values({"repo": {"url": "git@git.example.com:ops/x.git"}}))


def test_an_install_without_a_repository_fails_naming_repo_url(chart: helm.Chart) -> None:
    # The schema lets an empty repo.url through so that `helm lint` passes with the defaults;
    # an install or upgrade then stops in the template, before anything is created.
    chart.validate_schema({})
    with pytest.raises(helm.HelmError, match=r"repo\.url is required"):
        chart.render({}, name="ops", namespace="automation", is_install=True)
