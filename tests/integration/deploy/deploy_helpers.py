"""Helpers of the chart and image tests: render charts/reconciler with the real Helm engine.

The chart (charts/reconciler) and the image (Dockerfile) are how the daemon is deployed: they run ``reconciler run`` — configured
by :mod:`reconciler.daemon.settings` through ``RECONCILER_*`` variables — in a cluster. No cluster
is here, so the tests render the chart offline with ``helm_python`` (Helm v4's engine, no binary),
then check every object against the Kubernetes schemas (``kubernetes-validate``) and the two
Prometheus Operator objects against models generated from their CRDs
(``cloudcoil-models-prometheus-operator``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml
from cloudcoil.models.prometheus_operator import v1 as monitoring_v1

REPO_ROOT = Path(__file__).resolve().parents[3]
CHART_DIR = REPO_ROOT / "charts" / "reconciler"
ALERTS_FILE = CHART_DIR / "files" / "alerts.yaml"
DOCKERFILE = REPO_ROOT / "Dockerfile"

# The oldest Kubernetes minor the chart's objects are checked against (Chart.yaml allows >=1.25;
# every API the chart uses is GA since 1.25) and the newest that kubernetes-validate ships.
KUBE_VERSIONS = ("1.25", "1.37")
RELEASE = "ops"
NAMESPACE = "automation"
FULLNAME = "ops-reconciler"
REPO_URL = "https://git.example.com/ops/maintenance.git"
IN_CI = os.environ.get("CI") == "true"

# The value sets the issue names, each a realistic install; `needs_alerts` ones render the
# PrometheusRule, which needs charts/reconciler/files/alerts.yaml.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {"repo": {"url": REPO_URL}},
    "postgresql-3-replicas": {
        "replicaCount": 3,
        "repo": {"url": REPO_URL, "branch": "main", "path": "workflows"},
        "store": {
            "type": "postgresql",
            "postgresql": {"existingSecret": "reconciler-db", "urlKey": "url"},
        },
    },
    "sqlite-pvc": {
        "repo": {"url": REPO_URL},
        "store": {
            "type": "sqlite",
            "sqlite": {
                "persistence": {"enabled": True, "size": "5Gi", "storageClassName": "fast-ssd"}
            },
        },
    },
    "monitoring": {
        "repo": {"url": REPO_URL},
        "metrics": {
            "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
            "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        },
    },
    "vault-kubernetes": {
        "repo": {"url": REPO_URL},
        "vault": {
            "enabled": True,
            "address": "https://vault.example.com:8200",
            "authMethod": "kubernetes",
            "kubernetes": {"role": "reconciler", "mountPath": "k8s-prod"},
            "caSecret": "vault-ca",
        },
    },
    "vault-approle": {
        "repo": {"url": REPO_URL},
        "vault": {
            "enabled": True,
            "address": "https://vault.example.com:8200",
            "authMethod": "approle",
            "approle": {"existingSecret": "reconciler-vault-approle"},
        },
    },
    "ssh-git": {
        "repo": {"url": "git@git.example.com:ops/maintenance.git"},
        "git": {"credentials": {"type": "ssh", "existingSecret": "reconciler-git-ssh"}},
    },
    "token-git-and-api-tokens": {
        "repo": {"url": REPO_URL},
        "git": {"credentials": {"type": "token", "existingSecret": "reconciler-git"}},
        "apiToken": {"existingSecret": "reconciler-api", "key": "token"},
        "apiTokens": {"existingSecret": "reconciler-api-tokens", "key": "tokens.yaml"},
        "signatures": {"verify": True, "allowedSigners": {"configMap": "reconciler-signers"}},
        "windows": {"configMap": "reconciler-windows"},
        "webhookSecret": {"existingSecret": "reconciler-webhook", "key": "secret"},
        "daemon": {"allowPlugins": ["http.check", "http.request"], "logLevel": "debug"},
    },
    "github-app-git": {
        "repo": {"url": "https://github.com/example/maintenance.git"},
        "git": {
            "credentials": {
                "type": "githubApp",
                "existingSecret": "reconciler-github-app",
                "githubApp": {"appId": "123456", "installationId": "7890123"},
            }
        },
    },
    "locked-down-network": {
        "repo": {"url": REPO_URL},
        "networkPolicy": {
            "ingressFrom": [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
                    }
                }
            ],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}],
        },
    },
    "ingress-for-webhooks": {
        "repo": {"url": REPO_URL},
        "webhookSecret": {"existingSecret": "reconciler-webhook"},
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
            "hosts": [
                {"host": "reconciler.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}
            ],
            "tls": [{"secretName": "reconciler-tls", "hosts": ["reconciler.example.com"]}],
        },
    },
    "gateway-route-for-webhooks": {
        "repo": {"url": REPO_URL},
        "httpRoute": {
            "enabled": True,
            "parentRefs": [{"name": "public", "namespace": "gateways", "sectionName": "https"}],
            "hostnames": ["reconciler.example.com"],
            "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/hooks/"}}]},
                {"matches": [{"path": {"type": "Exact", "value": "/"}}]},
            ],
        },
    },
    "private-ca-and-extras": {
        "repo": {"url": REPO_URL},
        "store": {"type": "postgresql", "postgresql": {"existingSecret": "reconciler-db"}},
        "caBundle": {"configMap": "corporate-ca", "key": "bundle.pem"},
        "extraVolumes": [{"name": "client-cert", "secret": {"secretName": "plugin-client-cert"}}],
        "extraVolumeMounts": [
            {"name": "client-cert", "mountPath": "/etc/plugin-client", "readOnly": True}
        ],
        "daemon": {
            "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy.example.com:3128"}],
            "extraEnvFrom": [
                {"secretRef": {"name": "reconciler-plugin-env"}, "prefix": "RECONCILER_SECRET_"}
            ],
        },
    },
}
NEEDS_ALERTS = {"monitoring"}


def require_alerts_file() -> None:
    """Skip (fail under CI=true) while files/alerts.yaml — the observability issue's — is absent."""
    if ALERTS_FILE.exists():
        return
    message = (
        f"{ALERTS_FILE.relative_to(REPO_ROOT)} (the Prometheus rules file the PrometheusRule "
        "renders) does not exist yet"
    )
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Rendered:
    """One offline install: the objects the chart renders, and its NOTES.txt."""

    objects: list[dict[str, Any]]
    notes: str
    by_kind: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for obj in self.objects:
            self.by_kind.setdefault(obj["kind"], []).append(obj)

    def one(self, kind: str) -> dict[str, Any]:
        """The single object of ``kind`` (fails the test unless there is exactly one)."""
        found = self.by_kind.get(kind, [])
        assert len(found) == 1, f"expected one {kind}, rendered {len(found)}"
        return found[0]

    @property
    def pod(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.one("Deployment")["spec"]["template"]["spec"]
        return spec

    @property
    def container(self) -> dict[str, Any]:
        containers: list[dict[str, Any]] = self.pod["containers"]
        assert len(containers) == 1
        return containers[0]

    @property
    def env(self) -> dict[str, dict[str, Any]]:
        """The container's environment by variable name (each entry as rendered)."""
        return {item["name"]: item for item in self.container["env"]}

    @property
    def volumes(self) -> dict[str, dict[str, Any]]:
        return {item["name"]: item for item in self.pod["volumes"]}

    @property
    def mounts(self) -> dict[str, dict[str, Any]]:
        """The container's volume mounts by mount path."""
        return {item["mountPath"]: item for item in self.container["volumeMounts"]}


@contextmanager
def load_chart(path: Path = CHART_DIR) -> Iterator[helm.Chart]:
    chart = helm.Chart.load(path)
    try:
        yield chart
    finally:
        chart.close()


def render(chart: helm.Chart, values: dict[str, Any]) -> Rendered:
    """Render ``chart`` as ``helm install ops --namespace automation`` would, offline."""
    manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects: list[dict[str, Any]] = []
    notes = ""
    for name, text in sorted(manifests.items()):
        if name.endswith("NOTES.txt"):
            notes = text
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return Rendered(objects, notes)


# The Gateway API's HTTPRoute (gateway.networking.k8s.io/v1) as far as the chart renders it:
# its fields and their types from the Gateway API reference, unknown fields refused. Neither
# kubernetes-validate nor an installed model package knows the Gateway API's CRDs.
_GATEWAY_NAME = {"type": "string", "minLength": 1, "maxLength": 253}
_HOSTNAME = {
    "type": "string",
    "pattern": r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
}
HTTPROUTE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "gateway.networking.k8s.io/v1"},
        "kind": {"const": "HTTPRoute"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "parentRefs": {
                    "type": "array",
                    "maxItems": 32,
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            "group": {"type": "string"},
                            "kind": {"type": "string"},
                            "namespace": {"type": "string"},
                            "name": _GATEWAY_NAME,
                            "sectionName": {"type": "string"},
                            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                        },
                    },
                },
                "hostnames": {"type": "array", "maxItems": 16, "items": _HOSTNAME},
                "rules": {
                    "type": "array",
                    "maxItems": 16,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string"},
                            "matches": {
                                "type": "array",
                                "maxItems": 64,
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "path": {
                                            "type": "object",
                                            "additionalProperties": False,
                                            "properties": {
                                                "type": {
                                                    "enum": [
                                                        "Exact",
                                                        "PathPrefix",
                                                        "RegularExpression",
                                                    ]
                                                },
                                                "value": {"type": "string", "pattern": "^/"},
                                            },
                                        },
                                        "headers": {"type": "array"},
                                        "queryParams": {"type": "array"},
                                        "method": {"type": "string"},
                                    },
                                },
                            },
                            "filters": {"type": "array"},
                            "backendRefs": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["name"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "group": {"type": "string"},
                                        "kind": {"type": "string"},
                                        "namespace": {"type": "string"},
                                        "name": _GATEWAY_NAME,
                                        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                                        "weight": {"type": "integer", "minimum": 0},
                                    },
                                },
                            },
                            "timeouts": {"type": "object"},
                        },
                    },
                },
            },
        },
    },
}

CRD_MODELS = {
    "ServiceMonitor": monitoring_v1.ServiceMonitor,
    "PrometheusRule": monitoring_v1.PrometheusRule,
}


def validate_object(obj: dict[str, Any]) -> None:
    """Check ``obj`` against its schema; raise (the library's error) when it does not conform.

    Built-in kinds go through kubernetes-validate in strict mode (unknown fields are errors)
    for every version in :data:`KUBE_VERSIONS`. The Prometheus Operator kinds are parsed with
    the models generated from their CRDs and must come back unchanged: a field the CRD does not
    know would be dropped, so the round trip catches it as well as wrong types and patterns.
    The Gateway API's HTTPRoute is checked against :data:`HTTPROUTE_SCHEMA`.
    """
    if obj.get("apiVersion", "").startswith("gateway.networking.k8s.io/"):
        jsonschema.validate(obj, HTTPROUTE_SCHEMA)
        return
    model = CRD_MODELS.get(obj["kind"])
    if model is None:
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)
        return
    parsed = model.model_validate(obj).model_dump(by_alias=True, exclude_unset=True, mode="json")
    assert parsed == obj, f"{obj['kind']} has fields its CRD does not define"
