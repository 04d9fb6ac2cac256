"""charts/reconciler's reach beyond the pod: Ingress and HTTPRoute for webhooks, the operator's
CA bundle, extra volumes and environment, and `helm lint` with the chart's own defaults.

Rendered by the real Helm engine; every object is also checked against its schema by
test_chart_render.py's value-set tests (the value sets used here are in deploy_helpers).
"""

from __future__ import annotations

from collections.abc import Iterator

import helm_python as helm
import jsonschema
import pytest
from deploy_helpers import (
    CHART_DIR,
    FULLNAME,
    NAMESPACE,
    VALUE_SETS,
    Rendered,
    load_chart,
    render,
    validate_object,
)

CA_FILE = "/etc/reconciler/ca-bundle/ca.crt"


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with load_chart() as loaded:
        yield loaded


def rendered(chart: helm.Chart, name: str) -> Rendered:
    return render(chart, VALUE_SETS[name])


def test_helm_lint_passes_with_the_default_values_alone() -> None:
    # What chart-testing runs first: no values file, no --set.
    report = helm.lint(CHART_DIR, {}, strict=True, namespace=NAMESPACE)
    assert report["total_charts_linted"] == 1
    assert [m for m in report["messages"] if m["severity"] >= 2] == []
    assert report["errors"] == []


def test_neither_ingress_nor_route_is_rendered_unless_enabled(chart: helm.Chart) -> None:
    defaults = rendered(chart, "defaults")
    assert "Ingress" not in defaults.by_kind
    assert "HTTPRoute" not in defaults.by_kind


def test_the_ingress_sends_every_host_path_to_the_services_http_port(chart: helm.Chart) -> None:
    result = rendered(chart, "ingress-for-webhooks")
    ingress = result.one("Ingress")
    service = result.one("Service")
    validate_object(ingress)
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    assert spec["tls"] == [{"secretName": "reconciler-tls", "hosts": ["reconciler.example.com"]}]
    [rule] = spec["rules"]
    assert rule["host"] == "reconciler.example.com"
    assert rule["http"]["paths"] == [
        {
            "path": "/",
            "pathType": "Prefix",
            "backend": {
                "service": {
                    "name": service["metadata"]["name"],
                    "port": {"number": service["spec"]["ports"][0]["port"]},
                }
            },
        }
    ]


def test_an_ingress_host_may_be_left_out_and_the_path_type_defaults_to_prefix(
    chart: helm.Chart,
) -> None:
    values = {
        **VALUE_SETS["defaults"],
        "ingress": {"enabled": True, "hosts": [{"paths": [{"path": "/hooks/"}]}]},
    }
    ingress = render(chart, values).one("Ingress")
    validate_object(ingress)
    [rule] = ingress["spec"]["rules"]
    assert "host" not in rule
    assert "ingressClassName" not in ingress["spec"]
    assert rule["http"]["paths"][0]["pathType"] == "Prefix"


def test_the_route_attaches_to_its_gateways_and_sends_each_rule_to_the_service(
    chart: helm.Chart,
) -> None:
    result = rendered(chart, "gateway-route-for-webhooks")
    route = result.one("HTTPRoute")
    validate_object(route)
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    spec = route["spec"]
    assert spec["parentRefs"] == [
        {"name": "public", "namespace": "gateways", "sectionName": "https"}
    ]
    assert spec["hostnames"] == ["reconciler.example.com"]
    backend = [{"name": FULLNAME, "port": result.one("Service")["spec"]["ports"][0]["port"]}]
    assert spec["rules"] == [
        {"matches": [{"path": {"type": "PathPrefix", "value": "/hooks/"}}], "backendRefs": backend},
        {"matches": [{"path": {"type": "Exact", "value": "/"}}], "backendRefs": backend},
    ]


def test_the_route_schema_check_refuses_a_field_the_gateway_api_does_not_define(
    chart: helm.Chart,
) -> None:
    route = rendered(chart, "gateway-route-for-webhooks").one("HTTPRoute")
    route["spec"]["rules"][0]["backendRef"] = route["spec"]["rules"][0].pop("backendRefs")
    with pytest.raises(jsonschema.ValidationError, match="backendRef"):
        validate_object(route)


def test_the_ca_bundle_is_mounted_read_only_and_named_for_git_libpq_httpx_and_hvac(
    chart: helm.Chart,
) -> None:
    result = rendered(chart, "private-ca-and-extras")
    assert result.mounts["/etc/reconciler/ca-bundle"] == {
        "name": "ca-bundle",
        "mountPath": "/etc/reconciler/ca-bundle",
        "readOnly": True,
    }
    assert result.volumes["ca-bundle"]["configMap"] == {
        "name": "corporate-ca",
        "defaultMode": 0o444,
        "items": [{"key": "bundle.pem", "path": "ca.crt"}],
    }
    for variable in ("GIT_SSL_CAINFO", "PGSSLROOTCERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        assert result.env[variable] == {"name": variable, "value": CA_FILE}


def test_a_ca_bundle_may_come_from_a_secret(chart: helm.Chart) -> None:
    values = {**VALUE_SETS["defaults"], "caBundle": {"secret": "corporate-ca"}}
    result = render(chart, values)
    assert result.volumes["ca-bundle"]["secret"]["secretName"] == "corporate-ca"
    assert result.volumes["ca-bundle"]["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]
    assert result.env["SSL_CERT_FILE"]["value"] == CA_FILE


def test_without_a_ca_bundle_the_system_cas_stay_in_use(chart: helm.Chart) -> None:
    result = rendered(chart, "defaults")
    assert "ca-bundle" not in result.volumes
    assert not {"GIT_SSL_CAINFO", "PGSSLROOTCERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"} & set(
        result.env
    )


def test_extra_volumes_are_mounted_and_extra_env_comes_after_the_charts_own(
    chart: helm.Chart,
) -> None:
    result = rendered(chart, "private-ca-and-extras")
    assert result.volumes["client-cert"] == {
        "name": "client-cert",
        "secret": {"secretName": "plugin-client-cert"},
    }
    assert result.mounts["/etc/plugin-client"] == {
        "name": "client-cert",
        "mountPath": "/etc/plugin-client",
        "readOnly": True,
    }
    names = [item["name"] for item in result.container["env"]]
    assert names[-1] == "HTTPS_PROXY"
    assert result.container["envFrom"] == [
        {"secretRef": {"name": "reconciler-plugin-env"}, "prefix": "RECONCILER_SECRET_"}
    ]
    # The chart's own volumes are all still there.
    assert {"data", "work", "tmp", "home", "ca-bundle", "client-cert"} <= set(result.volumes)


def test_notes_ask_for_an_ingress_or_route_when_webhooks_are_set_up_but_unreachable(
    chart: helm.Chart,
) -> None:
    hint = "Enable ingress or httpRoute"
    inside_only = {**VALUE_SETS["defaults"], "webhookSecret": {"existingSecret": "hooks"}}
    assert hint in render(chart, inside_only).notes
    assert hint not in rendered(chart, "ingress-for-webhooks").notes
