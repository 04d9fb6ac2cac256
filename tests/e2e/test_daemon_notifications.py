"""Notifications from a real daemon process: a Slack webhook and GitHub commit statuses (fakes
of both on loopback) told about a workflow that fails, then is fixed; and a flapping workflow
that the rate limit keeps from flooding a channel."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.daemon import DaemonProcess, running
from tests.support.notify_server import FakeNotifyServer
from tests.support.repos import commit
from tests.support.waiting import until
from tests.support.workflows import file_workflow, put

pytestmark = pytest.mark.timeout(120)


def reader(name: str, path: Path) -> dict[str, Any]:
    """A workflow that reads ``path``: it fails while the file does not exist."""
    return {
        "apiVersion": "reconciler/v1",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {
            "interval": "1h",
            "inputs": {"path": str(path)},
            "start": "read",
            "states": {
                "read": {
                    "action": {"plugin": "file.read", "with": {"path": "${{ inputs.path }}"}},
                    "next": "done",
                    "onError": "failed",
                },
                "done": {"end": "success"},
                "failed": {"end": "failure"},
            },
        },
    }


def document(kind: str, name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "reconciler/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def api_url(daemon: DaemonProcess) -> str:
    def listening() -> str | None:
        found = re.search(r"API listening on (http://[0-9.]+:[0-9]+)", daemon.log_text())
        return found.group(1) if found else None

    return until(listening, 30, "the daemon to log its API address", interval=0.05)


def converged(daemon: DaemonProcess) -> int:
    """How many times the daemon logged motd converging after a run."""
    return sum(
        1
        for e in daemon.events()
        if e.get("workflow") == "motd" and e.get("reason") == "RunSucceeded"
    )


def counter(url: str, provider: str, outcome: str) -> float:
    """``reconciler_notifications_total{provider, outcome}`` as the daemon's /metrics says."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "reconciler_notifications_total" and sample.labels == {
                "provider": provider,
                "outcome": outcome,
            }:
                return float(sample.value)
    return 0.0


def test_a_failing_workflow_and_its_fix_each_notify_slack_and_github_once(
    tmp_path: Path, repo: Path
) -> None:
    with FakeNotifyServer() as fake:
        data = tmp_path / "data"
        present = tmp_path / "present.txt"
        present.write_text("here\n")
        put(repo, reader("app", tmp_path / "absent.txt"))
        put(
            repo,
            document("Provider", "chat", type="slack", secretRef="env:RECONCILER_SECRET_SLACK"),
        )
        put(
            repo,
            document(
                "Provider",
                "github",
                type="github",
                repository="acme/infra",
                address=f"{fake.url}/api/v3",
                secretRef="env:RECONCILER_SECRET_GITHUB",
            ),
        )
        put(
            repo,
            document(
                "Alert",
                "runs",
                providerRefs=["chat", "github"],
                events=["run.failed", "run.succeeded"],
                summary="{{ workflow }} {{ event }} at {{ revision }}",
            ),
        )
        broken = commit(repo, "app reads a file that is not there")
        env = {
            "RECONCILER_LISTEN": "127.0.0.1:0",
            "RECONCILER_SECRET_SLACK": f"{fake.url}/slack/{fake.slack_token}",
            "RECONCILER_SECRET_GITHUB": fake.token,
        }
        flags = (
            "--poll-interval",
            "300ms",
            "--notify-hosts",
            f"127.0.0.1:{fake.port}",
            "--external-url",
            "http://reconciler.test",
        )
        with running(
            repo, data, *flags, cwd=tmp_path, log=tmp_path / "daemon.log", env=env
        ) as daemon:
            [slack] = fake.wait_for("/slack/", 1)
            [status] = fake.wait_for("/api/v3/repos/", 1)
            assert "app run.failed at " + broken[:12] in slack.body["text"]
            assert status.path == f"/api/v3/repos/acme/infra/statuses/{broken}"
            assert (
                status.body["state"] == "failure"
                and status.body["target_url"] == "http://reconciler.test/#app"
            )
            # the back-off retries the run at the same commit: it fails again, nobody is told
            until(lambda: daemon.log_text().count("starting run") >= 2, 60, "a retry of app")
            until(lambda: daemon.log_text().count("retrying in") >= 2, 60, "the retry to fail")

            put(repo, reader("app", present))
            fixed = commit(repo, "app reads a file that is there")
            fake.wait_for("/slack/", 2)
            fake.wait_for("/api/v3/repos/", 2)
        # the daemon has stopped (draining what it had queued): these are all it sent
        slack_messages = fake.requests_to("/slack/")
        statuses = fake.requests_to("/api/v3/repos/")
        assert len(slack_messages) == 2 and len(statuses) == 2
        assert "app run.succeeded at " + fixed[:12] in slack_messages[1].body["text"]
        assert (
            statuses[1].path.endswith(f"/statuses/{fixed}")
            and statuses[1].body["state"] == "success"
        )
        assert all(r.status in (200, 201) for r in fake.received)
        log = (tmp_path / "daemon.log").read_text()
        assert fake.slack_token not in log  # the webhook URL is a credential


def test_a_flapping_workflow_is_held_back_by_the_rate_limit(tmp_path: Path, repo: Path) -> None:
    with FakeNotifyServer() as fake:
        target = tmp_path / "motd"
        put(repo, file_workflow("motd", target, "hello", keep=True, interval="1s"))
        put(
            repo,
            document(
                "Provider",
                "flaps",
                type="webhook",
                address=f"{fake.url}/hook",
                secretRef="env:RECONCILER_SECRET_HOOK",
                rateLimit={"burst": 2, "perMinute": 0.5},
            ),
        )
        put(
            repo,
            document(
                "Alert", "drift", providerRefs=["flaps"], events=["drift.detected", "drift.healed"]
            ),
        )
        commit(repo, "motd and a webhook for its drift")
        env = {"RECONCILER_LISTEN": "127.0.0.1:0", "RECONCILER_SECRET_HOOK": fake.hmac_key}
        flags = ("--poll-interval", "300ms", "--notify-hosts", "127.0.0.1")
        with running(
            repo, tmp_path / "data", *flags, cwd=tmp_path, log=tmp_path / "daemon.log", env=env
        ) as daemon:
            url = api_url(daemon)
            flaps = 5
            for flap in range(flaps):
                # converged (its probe saw the file right) before it is tampered with again
                until(lambda n=flap: converged(daemon) > n, 30, "motd to converge")
                target.write_text("tampered\n")
            # every convergence after a drift is two events (detected, healed), the start's
            # included: two fit the bucket; the rest are held back, as over the rate limit or
            # as a repeat of the last event sent (an event over the limit is not remembered)
            events = 2 * (flaps + 1)

            def held_back() -> float:
                return counter(url, "flaps", "rate_limited") + counter(url, "flaps", "deduplicated")

            until(lambda: held_back() >= events - 3, 30, "notifications held back")
            sent = counter(url, "flaps", "sent")
            assert counter(url, "flaps", "rate_limited") >= 1
        received = fake.requests_to("/hook")
        # the burst, and at most one token refilled meanwhile (one every two minutes)
        assert 2 <= len(received) <= 3
        assert sent == len(received)
        assert all(r.status == 204 for r in received)
