"""A real Prometheus server scrapes a running daemon and raises the failing-workflow alert and
the failing-probe alert.

Starts ``reconciler run`` (a subprocess serving ``/metrics`` on a free loopback port) on a git
repository with two broken workflows — one fails on every run, the other's probe reads a file
that is not there, so it is ``Degraded``/``ObserveFailed`` and never runs — and Debian's ``/usr/bin/prometheus`` on
another free port, scraping the daemon every second and evaluating a test copy of
``charts/reconciler/files/alerts.yaml`` every second (``for:`` shortened to 1s; the expressions
are the shipped ones). The test then polls Prometheus' own ``/api/v1/alerts`` until
``ReconcilerWorkflowFailing`` for that workflow is pending or firing — the first failed run
leaves it ``Degraded`` with reason ``RunFailed``, which the rule reads from
``reconciler_workflow_reason`` — and ``ReconcilerWorkflowProbeFailing`` for the other (which
raises no failing-workflow alert: it never ran), and checks that the alerts about
a healthy daemon (absent, git sync stale, config invalid, store unhealthy, probe failing) stay
silent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.telemetry.harness import failing_workflow, put, workflow
from tests.support.daemon import run_command, without_settings
from tests.support.net import free_port
from tests.support.repos import commit, init_repo
from tests.support.waiting import until

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

PROMETHEUS = "/usr/bin/prometheus"
RULES = Path(__file__).resolve().parents[3] / "charts" / "reconciler" / "files" / "alerts.yaml"


def wait_for(url: str, *, proc: subprocess.Popen[bytes], log: Path, within: float = 30) -> None:
    def answers() -> bool:
        assert proc.poll() is None, f"{proc.args!r} exited:\n{log.read_text()[-3000:]}"
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        until(answers, within, f"{url} to answer", interval=0.1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}:\n{log.read_text()[-3000:]}") from None


def probe_failing_workflow(name: str, missing: Path) -> dict[str, Any]:
    """Its probe reads ``missing``, which nobody writes: every check fails, no run starts."""
    return workflow(
        name,
        {"done": {"end": "success"}},
        start="done",
        observe={"plugin": "file.read", "with": {"path": str(missing)}},
        desired={"content": "hello\n"},
    )


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes the test starts; terminated (then killed) at teardown."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in reversed(started):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def test_real_prometheus_raises_the_failing_workflow_alert_from_the_daemons_metrics(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    if not (os.access(PROMETHEUS, os.X_OK) and shutil.which("promtool")):
        message = f"{PROMETHEUS} is not installed (apt-get install prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)

    name = f"doomed-{uuid.uuid4().hex[:8]}"
    blind = f"blind-{uuid.uuid4().hex[:8]}"
    repo = init_repo(tmp_path / "repo")
    put(repo, name, failing_workflow(name))
    put(repo, blind, probe_failing_workflow(blind, tmp_path / "never-written.txt"))
    commit(repo)

    daemon_port, prometheus_port = free_port(), free_port()
    daemon_log = tmp_path / "daemon.log"
    env = without_settings()
    with daemon_log.open("wb") as out:
        processes.append(
            subprocess.Popen(
                run_command(
                    repo,
                    tmp_path / "data",
                    *("--listen", f"127.0.0.1:{daemon_port}", "--poll-interval", "1s"),
                ),
                cwd=tmp_path,
                stdout=out,
                stderr=out,
                env=env,
            )
        )
    wait_for(f"http://127.0.0.1:{daemon_port}/metrics", proc=processes[0], log=daemon_log)

    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = "1s"
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp_path / "rules.yaml")],
        "scrape_configs": [
            {
                "job_name": "reconciler",
                "static_configs": [{"targets": [f"127.0.0.1:{daemon_port}"]}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    prometheus_log = tmp_path / "prometheus.log"
    with prometheus_log.open("wb") as out:
        processes.append(
            subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={tmp_path / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{prometheus_port}",
                ],
                cwd=tmp_path,
                stdout=out,
                stderr=out,
            )
        )
    api = f"http://127.0.0.1:{prometheus_port}/api/v1"
    wait_for(f"http://127.0.0.1:{prometheus_port}/-/ready", proc=processes[1], log=prometheus_log)

    def alerts() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = httpx.get(f"{api}/alerts", timeout=5).json()["data"]["alerts"]
        return found

    def raised(alertname: str, workflow: str) -> list[dict[str, Any]]:
        assert processes[0].poll() is None, daemon_log.read_text()[-3000:]
        return [
            a
            for a in alerts()
            if a["labels"].get("alertname") == alertname
            and a["labels"].get("workflow") == workflow
            and a["state"] in ("pending", "firing")
        ]

    failing = until(
        lambda: raised("ReconcilerWorkflowFailing", name),
        60,
        f"ReconcilerWorkflowFailing for {name}",
        interval=0.5,
    )
    until(
        lambda: raised("ReconcilerWorkflowProbeFailing", blind),
        60,
        f"ReconcilerWorkflowProbeFailing for {blind}",
        interval=0.5,
    )

    alert = failing[0]
    assert alert["labels"]["severity"] == "warning"
    assert alert["labels"]["job"] == "reconciler"
    assert alert["annotations"]["summary"] == f"Workflow {name} keeps failing"
    assert alert["annotations"]["runbook_url"] == (
        "https://github.com/reconciler/reconciler/blob/main/docs/operations.md"
        "#reconcilerworkflowfailing"
    )
    # Prometheus saw what the alert is built on, scraped from the daemon
    query = f'reconciler_runs_total{{workflow="{name}",result="failed"}}'
    result = httpx.get(f"{api}/query", params={"query": query}, timeout=5).json()["data"]
    assert float(result["result"][0]["value"][1]) >= 1
    targets = httpx.get(f"{api}/targets", timeout=5).json()["data"]["activeTargets"]
    assert [t["health"] for t in targets] == ["up"]
    # a healthy, scraped daemon with a valid repository raises none of these
    quiet = {
        "ReconcilerAbsent",
        "ReconcilerGitSyncStale",
        "ReconcilerConfigInvalid",
        "ReconcilerStoreUnhealthy",
    }
    assert not [a for a in alerts() if a["labels"]["alertname"] in quiet]
    # the blind workflow never ran: its probe alert is the only one about it
    assert not raised("ReconcilerWorkflowFailing", blind)
    probe = raised("ReconcilerWorkflowProbeFailing", blind)[0]
    assert probe["labels"]["reason"] == "ObserveFailed"
    assert probe["annotations"]["runbook_url"].endswith("#reconcilerworkflowprobefailing")
