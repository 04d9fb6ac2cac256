"""charts/reconciler rendered by the real Helm engine: what a `helm install` would create.

Each value set of the issue (defaults, PostgreSQL with 3 replicas, SQLite on a PVC, monitoring,
Vault Kubernetes auth, SSH and token git credentials) is linted, rendered, validated object by
object, and its Deployment checked for what a security review and the daemon need.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from deploy_helpers import (
    ALERTS_FILE,
    CHART_DIR,
    DOCKERFILE,
    FULLNAME,
    NAMESPACE,
    NEEDS_ALERTS,
    REPO_URL,
    VALUE_SETS,
    Rendered,
    load_chart,
    render,
    require_alerts_file,
    validate_object,
)

from reconciler.daemon.policy import restrict_registry
from reconciler.daemon.settings import DaemonSettings
from reconciler.plugin import PluginRegistry
from reconciler.sources.github_app import GitHubApp

DATA_DIR = "/var/lib/reconciler"
WORK_DIR = "/work"
PYPROJECT = DOCKERFILE.parent / "pyproject.toml"


def built_in_plugins() -> set[str]:
    """The plugins the project installs (its ``reconciler.plugins`` entry points)."""
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    return set(project["entry-points"]["reconciler.plugins"])


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with load_chart() as loaded:
        yield loaded


@pytest.fixture(scope="module")
def installs(chart: helm.Chart) -> dict[str, Rendered]:
    """Every value set rendered once (those that need the alerts file only when it exists)."""
    return {
        name: render(chart, values)
        for name, values in VALUE_SETS.items()
        if name not in NEEDS_ALERTS or ALERTS_FILE.exists()
    }


def install(installs: dict[str, Rendered], name: str) -> Rendered:
    if name in NEEDS_ALERTS:
        require_alerts_file()
    return installs[name]


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_chart_lints_without_warnings(name: str) -> None:
    if name in NEEDS_ALERTS:
        require_alerts_file()
    report = helm.lint(CHART_DIR, VALUE_SETS[name], strict=True, namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["total_charts_linted"] == 1
    assert problems == [], problems
    assert report["errors"] == []


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_rendered_object_conforms_to_its_schema(
    installs: dict[str, Rendered], name: str
) -> None:
    rendered = install(installs, name)
    assert rendered.objects
    for obj in rendered.objects:
        validate_object(obj)
        assert obj["metadata"]["name"].startswith(FULLNAME)
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == "ops"


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_the_chart_never_creates_a_secret_or_holds_a_secret_value(
    installs: dict[str, Rendered], name: str
) -> None:
    rendered = install(installs, name)
    assert "Secret" not in rendered.by_kind
    for var in rendered.container["env"]:
        assert not re.search(r"TOKEN$|SECRET$|PASSWORD", var["name"]) or "value" not in var


def test_defaults_render_the_daemon_its_service_account_service_pdb_and_network_policy(
    installs: dict[str, Rendered],
) -> None:
    rendered = installs["defaults"]
    assert sorted(rendered.by_kind) == [
        "Deployment",
        "NetworkPolicy",
        "PersistentVolumeClaim",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    ]
    assert rendered.one("Deployment")["spec"]["replicas"] == 1
    assert rendered.pod["serviceAccountName"] == rendered.one("ServiceAccount")["metadata"]["name"]


def test_probes_ask_healthz_for_liveness_and_readyz_for_readiness(
    installs: dict[str, Rendered],
) -> None:
    container = installs["defaults"].container
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


def test_the_pod_runs_as_the_images_non_root_user_with_nothing_extra(
    installs: dict[str, Rendered],
) -> None:
    rendered = installs["defaults"]
    image_user = re.findall(r"^USER (\d+):(\d+)$", DOCKERFILE.read_text(), re.MULTILINE)[-1]
    pod = rendered.pod["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert (str(pod["runAsUser"]), str(pod["runAsGroup"])) == image_user
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    container = rendered.container["securityContext"]
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert container["seccompProfile"] == {"type": "RuntimeDefault"}
    # The daemon never calls the Kubernetes API: no token in the pod unless Vault needs it.
    assert rendered.pod["automountServiceAccountToken"] is False
    assert rendered.one("ServiceAccount")["automountServiceAccountToken"] is False


def test_only_the_data_dir_work_dir_tmp_and_home_are_writable(
    installs: dict[str, Rendered],
) -> None:
    for name, rendered in installs.items():
        writable = {path for path, mount in rendered.mounts.items() if not mount.get("readOnly")}
        assert writable == {DATA_DIR, WORK_DIR, "/tmp", "/home/reconciler"}, name
        for path, mount in rendered.mounts.items():
            volume = rendered.volumes[mount["name"]]
            # read-only: credentials (Secrets) or public keys (the allowed signers' ConfigMap)
            readable = {"secret", "configMap"}
            kinds = {"emptyDir", "persistentVolumeClaim"} if path in writable else readable
            assert kinds & volume.keys(), (name, path, volume)


def settings_from(rendered: Rendered, monkeypatch: pytest.MonkeyPatch) -> DaemonSettings:
    """The settings ``reconciler run`` would load in the rendered pod (Kubernetes' values for
    the variables it fills from the pod and from Secrets)."""
    from_cluster = {
        "RECONCILER_REPLICA_ID": "ops-reconciler-5d9c7-x2x4q",
        "RECONCILER_STORE": "postgresql+psycopg://reconciler@db/reconciler",
    }
    for name, item in rendered.env.items():
        monkeypatch.setenv(name, item["value"] if "value" in item else from_cluster[name])
    return DaemonSettings.load()


def test_the_daemon_settings_load_from_the_rendered_environment(
    installs: dict[str, Rendered], monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered = installs["defaults"]
    assert rendered.env["RECONCILER_REPLICA_ID"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.name"}
    }
    settings = settings_from(rendered, monkeypatch)
    assert settings.repo == REPO_URL
    assert settings.listen == "0.0.0.0:8080"
    assert str(settings.data_dir) == DATA_DIR
    assert settings.store is None  # SQLite in the data directory, on the claim
    assert settings.replica_id == "ops-reconciler-5d9c7-x2x4q"
    assert settings.poll_interval.total_seconds() == 60
    assert settings.grace_period.total_seconds() == 30
    assert rendered.pod["terminationGracePeriodSeconds"] == 45


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_reconciler_variable_the_chart_sets_is_a_daemon_setting(
    installs: dict[str, Rendered], name: str
) -> None:
    fields = set(DaemonSettings.model_fields)
    # git's GitHub App credential helper reads its own variables, each a field's alias.
    helper = {field.validation_alias for field in GitHubApp.model_fields.values()}
    variables = [var for var in install(installs, name).env if var.startswith("RECONCILER_")]
    assert variables, "the chart configures the daemon through RECONCILER_* variables"
    for var in variables:
        assert var.removeprefix("RECONCILER_").lower() in fields or var in helper, var


def test_postgresql_with_three_replicas_shares_one_store_url_from_a_secret(
    installs: dict[str, Rendered], monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered = installs["postgresql-3-replicas"]
    deployment = rendered.one("Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert rendered.env["RECONCILER_STORE"] == {
        "name": "RECONCILER_STORE",
        "valueFrom": {"secretKeyRef": {"name": "reconciler-db", "key": "url"}},
    }
    assert rendered.env["RECONCILER_BRANCH"]["value"] == "main"
    assert rendered.env["RECONCILER_PATH"]["value"] == "workflows"
    # No SQLite, so no claim: each replica keeps its clone in an emptyDir.
    assert "PersistentVolumeClaim" not in rendered.by_kind
    assert rendered.volumes["data"] == {"name": "data", "emptyDir": {}}
    assert rendered.one("PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    assert settings_from(rendered, monkeypatch).store == (
        "postgresql+psycopg://reconciler@db/reconciler"
    )


def test_sqlite_keeps_its_data_dir_on_a_claim_that_outlives_uninstall(
    installs: dict[str, Rendered],
) -> None:
    rendered = installs["sqlite-pvc"]
    claim = rendered.one("PersistentVolumeClaim")
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert rendered.volumes["data"]["persistentVolumeClaim"] == {
        "claimName": claim["metadata"]["name"]
    }
    assert rendered.mounts[DATA_DIR]["name"] == "data"
    assert rendered.env["RECONCILER_DATA_DIR"]["value"] == DATA_DIR
    assert "RECONCILER_STORE" not in rendered.env
    # One writer on a ReadWriteOnce volume: the old pod goes before the new one comes.
    assert rendered.one("Deployment")["spec"]["strategy"] == {"type": "Recreate"}


def test_an_existing_claim_is_used_and_none_is_created(chart: helm.Chart) -> None:
    values = {
        "repo": {"url": REPO_URL},
        "store": {"sqlite": {"persistence": {"existingClaim": "reconciler-history"}}},
    }
    rendered = render(chart, values)
    assert "PersistentVolumeClaim" not in rendered.by_kind
    assert rendered.volumes["data"]["persistentVolumeClaim"] == {"claimName": "reconciler-history"}


def test_the_service_monitor_scrapes_the_services_http_port(installs: dict[str, Rendered]) -> None:
    rendered = install(installs, "monitoring")
    monitor = rendered.one("ServiceMonitor")
    service = rendered.one("Service")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert monitor["spec"]["endpoints"] == [
        {"port": "http", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}
    ]
    assert service["spec"]["ports"][0]["name"] == "http"


def test_the_prometheus_rule_holds_exactly_the_rules_file(installs: dict[str, Rendered]) -> None:
    rendered = install(installs, "monitoring")
    rule = rendered.one("PrometheusRule")
    rules_file = yaml.safe_load(ALERTS_FILE.read_text(encoding="utf-8"))
    assert rule["spec"] == {"groups": rules_file["groups"]}
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_runbook_links_are_absolute_and_open_the_page_the_value_names(chart: helm.Chart) -> None:
    """Alertmanager, Slack and pagers show runbook_url as a link: it must be absolute, and it
    must open the docs this cluster's operators read, with each alert's own section."""
    rules_file = yaml.safe_load(ALERTS_FILE.read_text(encoding="utf-8"))
    anchors = {
        rule["alert"]: rule["annotations"]["runbook_url"].partition("#")[2]
        for group in rules_file["groups"]
        for rule in group["rules"]
    }
    mirror = "https://docs.internal.example.com/reconciler/operations.html"
    values = {
        "repo": {"url": REPO_URL},
        "metrics": {"prometheusRule": {"enabled": True, "runbookBaseUrl": mirror}},
    }
    rule = render(chart, values).one("PrometheusRule")
    validate_object(rule)
    links = {
        r["alert"]: r["annotations"]["runbook_url"]
        for group in rule["spec"]["groups"]
        for r in group["rules"]
    }
    assert links == {alert: f"{mirror}#{anchor}" for alert, anchor in anchors.items()}
    assert all(anchor for anchor in anchors.values())

    default = install_defaults_with_rules(chart)
    assert {
        r["annotations"]["runbook_url"].partition("#")[0]
        for group in default["spec"]["groups"]
        for r in group["rules"]
    } == {"https://github.com/reconciler/reconciler/blob/main/docs/operations.md"}


def install_defaults_with_rules(chart: helm.Chart) -> dict[str, Any]:
    values = {"repo": {"url": REPO_URL}, "metrics": {"prometheusRule": {"enabled": True}}}
    return render(chart, values).one("PrometheusRule")


def test_the_packaged_chart_carries_the_rules_file(
    installs: dict[str, Rendered], tmp_path: Path
) -> None:
    """`helm package` (what a chart repository serves) keeps files/alerts.yaml in the archive."""
    reference = install(installs, "monitoring")
    archive = helm.package(CHART_DIR, destination=tmp_path)
    with load_chart(Path(archive)) as packaged:
        rendered = render(packaged, VALUE_SETS["monitoring"])
    assert rendered.one("PrometheusRule") == reference.one("PrometheusRule")
    assert rendered.objects == reference.objects


def test_the_prometheus_rule_renders_whatever_rules_file_the_chart_ships(
    tmp_path: Path,
) -> None:
    """The template copies files/alerts.yaml as it is, Prometheus templating included."""
    copy = tmp_path / "reconciler"
    subprocess.run(["cp", "-r", str(CHART_DIR), str(copy)], check=True)
    (copy / "files").mkdir(exist_ok=True)
    groups = [
        {
            "name": "reconciler-test",
            "rules": [
                {
                    "alert": "ReconcilerWorkflowFailing",
                    "expr": 'reconciler_workflow_status{status="Degraded"} == 1',
                    "for": "15m",
                    "labels": {"severity": "warning"},
                    "annotations": {"summary": "{{ $labels.workflow }} is failing"},
                }
            ],
        }
    ]
    (copy / "files" / "alerts.yaml").write_text(yaml.safe_dump({"groups": groups}))
    values = {"repo": {"url": REPO_URL}, "metrics": {"prometheusRule": {"enabled": True}}}
    with load_chart(copy) as chart:
        rule = render(chart, values).one("PrometheusRule")
    validate_object(rule)
    assert rule["spec"]["groups"] == groups


def test_vault_kubernetes_auth_gets_the_address_role_and_service_account_token(
    installs: dict[str, Rendered], monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered = installs["vault-kubernetes"]
    env = {name: item.get("value") for name, item in rendered.env.items()}
    assert env["RECONCILER_VAULT_ADDR"] == "https://vault.example.com:8200"
    assert env["RECONCILER_VAULT_AUTH_METHOD"] == "kubernetes"
    assert env["RECONCILER_VAULT_ROLE"] == "reconciler"
    assert env["RECONCILER_VAULT_AUTH_MOUNT"] == "k8s-prod"
    # Kubernetes auth logs in with the pod's service-account token: it is mounted only now.
    assert rendered.pod["automountServiceAccountToken"] is True
    assert env["RECONCILER_VAULT_CA_CERT"] == "/etc/reconciler/vault-ca/ca.crt"
    assert rendered.volumes["vault-ca"]["secret"]["secretName"] == "vault-ca"
    assert rendered.mounts["/etc/reconciler/vault-ca"]["readOnly"] is True
    assert "vault-credentials" not in rendered.volumes
    settings = settings_from(rendered, monkeypatch)
    assert settings.vault_addr == "https://vault.example.com:8200"
    assert settings.vault_auth_method == "kubernetes"
    assert (settings.vault_role, settings.vault_auth_mount) == ("reconciler", "k8s-prod")


def test_vault_approle_credentials_are_files_from_an_existing_secret(
    installs: dict[str, Rendered],
) -> None:
    rendered = installs["vault-approle"]
    env = {name: item.get("value") for name, item in rendered.env.items()}
    assert env["RECONCILER_VAULT_AUTH_METHOD"] == "approle"
    assert env["RECONCILER_VAULT_ROLE_ID_FILE"] == "/etc/reconciler/vault/role-id"
    assert env["RECONCILER_VAULT_SECRET_ID_FILE"] == "/etc/reconciler/vault/secret-id"
    assert rendered.mounts["/etc/reconciler/vault"] == {
        "name": "vault-credentials",
        "mountPath": "/etc/reconciler/vault",
        "readOnly": True,
    }
    secret = rendered.volumes["vault-credentials"]["secret"]
    assert secret["secretName"] == "reconciler-vault-approle"
    assert {item["key"] for item in secret["items"]} == {"role-id", "secret-id"}
    # No Kubernetes auth: the service-account token stays out of the pod.
    assert rendered.pod["automountServiceAccountToken"] is False


def test_ssh_git_credentials_give_ssh_the_key_and_pinned_known_hosts(
    installs: dict[str, Rendered], tmp_path: Path
) -> None:
    rendered = installs["ssh-git"]
    volume = rendered.volumes["git-credentials"]["secret"]
    assert volume["secretName"] == "reconciler-git-ssh"
    assert volume["defaultMode"] == 0o440
    assert {item["path"] for item in volume["items"]} == {"ssh-privatekey", "known_hosts"}
    assert rendered.mounts["/etc/reconciler/git"]["readOnly"] is True
    command = rendered.env["GIT_SSH_COMMAND"]["value"]
    # The real ssh client resolves the options the way git will pass them (with the Secret's
    # two files where the volume puts them).
    (tmp_path / "ssh-privatekey").write_text("not a real key\n")
    (tmp_path / "known_hosts").write_text("git.example.com ssh-ed25519 AAAA\n")
    argv = shlex.split(command.replace("/etc/reconciler/git", str(tmp_path)))
    resolved = subprocess.run(
        [*argv[:1], "-G", *argv[1:], "git.example.com"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert f"identityfile {tmp_path}/ssh-privatekey" in resolved
    assert f"userknownhostsfile {tmp_path}/known_hosts" in resolved
    assert "stricthostkeychecking true" in resolved
    assert "batchmode yes" in resolved


def test_a_git_token_reaches_git_through_a_credential_helper_reading_the_mounted_file(
    installs: dict[str, Rendered], tmp_path: Path
) -> None:
    rendered = installs["token-git-and-api-tokens"]
    volume = rendered.volumes["git-credentials"]["secret"]
    assert volume["secretName"] == "reconciler-git"
    assert volume["items"] == [{"key": "token", "path": "token"}]
    (tmp_path / "token").write_text("ghp_canary\n")
    env = {
        name: item["value"].replace("/etc/reconciler/git", str(tmp_path))
        for name, item in rendered.env.items()
        if name.startswith("GIT_CONFIG_")
    }
    assert "ghp_canary" not in str(rendered.objects)
    answer = subprocess.run(
        ["git", "credential", "fill"],
        input="protocol=https\nhost=git.example.com\n\n",
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GIT_TERMINAL_PROMPT": "0", **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "username=x-access-token" in answer.splitlines()
    assert "password=ghp_canary" in answer.splitlines()


def test_api_token_and_webhook_secret_are_files_from_existing_secrets(
    installs: dict[str, Rendered],
) -> None:
    rendered = installs["token-git-and-api-tokens"]
    for setting, volume, secret, key in [
        ("RECONCILER_API_TOKEN_FILE", "api-token", "reconciler-api", "token"),
        ("RECONCILER_WEBHOOK_SECRET_FILE", "webhook-secret", "reconciler-webhook", "secret"),
    ]:
        path = Path(rendered.env[setting]["value"])
        mount = rendered.mounts[str(path.parent)]
        assert mount == {"name": volume, "mountPath": str(path.parent), "readOnly": True}
        assert rendered.volumes[volume]["secret"]["secretName"] == secret
        assert rendered.volumes[volume]["secret"]["items"] == [{"key": key, "path": path.name}]
    assert rendered.env["RECONCILER_ALLOW_PLUGINS"]["value"] == "http.check,http.request"


def test_named_tokens_and_allowed_signers_are_files_the_daemon_settings_point_to(
    installs: dict[str, Rendered],
) -> None:
    rendered = installs["token-git-and-api-tokens"]
    tokens = Path(rendered.env["RECONCILER_API_TOKENS_FILE"]["value"])
    signers = Path(rendered.env["RECONCILER_ALLOWED_SIGNERS"]["value"])
    assert rendered.mounts[str(tokens.parent)]["readOnly"] is True
    assert rendered.volumes["api-tokens"]["secret"]["secretName"] == "reconciler-api-tokens"
    assert rendered.volumes["api-tokens"]["secret"]["items"] == [
        {"key": "tokens.yaml", "path": tokens.name}
    ]
    assert rendered.mounts[str(signers.parent)]["readOnly"] is True
    assert rendered.volumes["allowed-signers"]["configMap"] == {
        "name": "reconciler-signers",
        "items": [{"key": "allowed_signers", "path": signers.name}],
    }
    assert rendered.env["RECONCILER_VERIFY_SIGNATURES"]["value"] == "true"


def test_the_windows_file_is_a_config_map_the_daemon_settings_point_to(
    installs: dict[str, Rendered],
) -> None:
    rendered = installs["token-git-and-api-tokens"]
    windows = Path(rendered.env["RECONCILER_WINDOWS_FILE"]["value"])
    assert rendered.mounts[str(windows.parent)]["readOnly"] is True
    assert rendered.volumes["windows"]["configMap"] == {
        "name": "reconciler-windows",
        "items": [{"key": "windows.yaml", "path": windows.name}],
    }
    assert "RECONCILER_WINDOWS_FILE" not in installs["defaults"].env
    assert "windows" not in installs["defaults"].volumes


def test_by_default_signatures_are_not_verified_and_no_tokens_file_is_mounted(
    installs: dict[str, Rendered],
) -> None:
    rendered = installs["defaults"]
    assert "RECONCILER_VERIFY_SIGNATURES" not in rendered.env
    assert "RECONCILER_API_TOKENS_FILE" not in rendered.env
    assert {"api-tokens", "allowed-signers"}.isdisjoint(rendered.volumes)


def test_the_network_policy_opens_only_the_http_port(installs: dict[str, Rendered]) -> None:
    default = installs["defaults"].one("NetworkPolicy")["spec"]
    assert default["policyTypes"] == ["Ingress"]
    assert default["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}]}]
    locked = installs["locked-down-network"].one("NetworkPolicy")["spec"]
    assert locked["policyTypes"] == ["Ingress", "Egress"]
    assert locked["ingress"][0]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    dns: dict[str, Any] = {
        "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    }
    assert locked["egress"] == [dns, {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]


def test_pod_selectors_all_pick_the_deployments_pods(installs: dict[str, Rendered]) -> None:
    rendered = installs["defaults"]
    pod_labels = rendered.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    for selector in [
        rendered.one("Deployment")["spec"]["selector"]["matchLabels"],
        rendered.one("Service")["spec"]["selector"],
        rendered.one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        rendered.one("NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
    ]:
        assert selector and selector.items() <= pod_labels.items()


def test_notes_tell_how_to_reach_the_page_and_what_to_do_next(
    installs: dict[str, Rendered],
) -> None:
    notes = installs["defaults"].notes
    assert f"kubectl --namespace {NAMESPACE} port-forward service/{FULLNAME} 8080:8080" in notes
    assert "http://127.0.0.1:8080/" in notes
    assert "No API token is configured, so the API refuses reads" in notes
    assert "apiToken.existingSecret" in notes
    assert "daemon.allowPlugins" not in notes  # the default is a deliberate list
    configured = installs["token-git-and-api-tokens"].notes
    assert "type it in the page's header field" in configured
    assert (
        f"kubectl --namespace {NAMESPACE} get secret reconciler-api -o jsonpath='{{.data.token}}'"
        in configured
    )
    assert "apiToken.existingSecret" not in configured
    assert "daemon.allowPlugins" not in configured


def test_by_default_every_built_in_plugin_but_shell_run_is_allowed(
    installs: dict[str, Rendered], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_from(installs["defaults"], monkeypatch)
    assert settings.allow_plugins is not None
    assert set(settings.allow_plugins) == built_in_plugins() - {"shell.run"}
    allowed = restrict_registry(PluginRegistry.discover(), settings.allow_plugins).names()
    assert "shell.run" not in allowed
    assert set(allowed) >= built_in_plugins() - {"shell.run"}


def test_an_empty_plugin_list_allows_no_plugin_rather_than_every_one(
    chart: helm.Chart, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered = render(chart, {"repo": {"url": REPO_URL}, "daemon": {"allowPlugins": []}})
    assert rendered.env["RECONCILER_ALLOW_PLUGINS"]["value"] == ""
    settings = settings_from(rendered, monkeypatch)
    assert settings.allow_plugins == []
    assert restrict_registry(PluginRegistry.discover(), settings.allow_plugins).names() == []
    assert "daemon.allowPlugins is empty" in rendered.notes


def test_a_wildcard_plugin_list_is_honoured_and_the_notes_warn_about_it(
    chart: helm.Chart, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered = render(chart, {"repo": {"url": REPO_URL}, "daemon": {"allowPlugins": ["*"]}})
    settings = settings_from(rendered, monkeypatch)
    assert "shell.run" in restrict_registry(PluginRegistry.discover(), settings.allow_plugins)
    assert "shell.run included" in rendered.notes


def test_the_grants_default_to_the_work_dir_and_the_secret_variables_only(
    installs: dict[str, Rendered], monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered = installs["defaults"]
    settings = settings_from(rendered, monkeypatch)
    assert str(settings.workdir) == WORK_DIR
    assert [str(p) for p in settings.file_roots or []] == [WORK_DIR]
    assert settings.allow_env == ["RECONCILER_SECRET_*"]
    assert settings.max_file_bytes == 16 * 1024 * 1024
    assert settings.expression_cost_limit == 1_000_000
    assert settings.api_docs is False
    assert rendered.volumes["work"] == {"name": "work", "emptyDir": {}}
    assert rendered.mounts[WORK_DIR]["name"] == "work"
    # The data directory (store, clone) is a different directory, out of the roots' reach.
    assert not any(Path(DATA_DIR).is_relative_to(root) for root in settings.file_roots or [])


def test_every_grant_value_reaches_the_daemon(
    chart: helm.Chart, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = {
        "fileRoots": ["/work", "/srv/reports"],
        "allowEnv": ["APP_*", "RECONCILER_SECRET_DB"],
        "maxFileBytes": 1048576,
        "expressionCostLimit": 5000,
        "apiDocs": True,
    }
    rendered = render(chart, {"repo": {"url": REPO_URL}, "daemon": daemon})
    for obj in rendered.objects:
        validate_object(obj)
    settings = settings_from(rendered, monkeypatch)
    assert [str(p) for p in settings.file_roots or []] == ["/work", "/srv/reports"]
    assert settings.allow_env == ["APP_*", "RECONCILER_SECRET_DB"]
    assert settings.max_file_bytes == 1048576
    assert settings.expression_cost_limit == 5000
    assert settings.api_docs is True


def test_empty_grant_lists_grant_nothing(
    chart: helm.Chart, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = {"fileRoots": [], "allowEnv": []}
    settings = settings_from(
        render(chart, {"repo": {"url": REPO_URL}, "daemon": daemon}), monkeypatch
    )
    assert settings.file_roots == []
    assert settings.allow_env == []
