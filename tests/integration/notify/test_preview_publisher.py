"""The preview publisher against the fake GitHub and GitLab over real HTTP: one comment,
updated in place; statuses in each forge's words; 4xx, 5xx, timeouts and a host the operator
did not allow are logged and counted, never raised, and the token never reaches the log."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog.testing

from reconciler.config.notifications import ProviderType
from reconciler.notify.policy import NotifyPolicy
from reconciler.notify.previews import MARKER, ForgeAccess, PreviewPublisher, PullRequest
from reconciler.previews import Change, PreviewReport, WorkflowPreview
from tests.support.notify_server import FakeNotifyServer

SHA = "0123456789abcdef0123456789abcdef01234567"
GITHUB_PR = PullRequest(ProviderType.GITHUB, "acme/workflows", 7, SHA, "feature")
GITLAB_MR = PullRequest(ProviderType.GITLAB, "42", 3, SHA, "feature")


@pytest.fixture
def fake() -> Iterator[FakeNotifyServer]:
    with FakeNotifyServer() as server:
        yield server


def publisher(fake: FakeNotifyServer, *, hosts: tuple[str, ...] | None = None) -> PreviewPublisher:
    policy = NotifyPolicy.of(hosts if hosts is not None else [f"127.0.0.1:{fake.port}"], None)
    return PreviewPublisher(policy, lambda _forge: ForgeAccess(fake.url, fake.token), timeout=0.5)


def report(content: str) -> PreviewReport:
    motd = WorkflowPreview(
        name="motd",
        change=Change.CHANGED,
        would_run=True,
        reason="out of sync",
        diff=[{"path": "content", "desired": content, "observed": "hello"}],
    )
    return PreviewReport(ref="feature", revision=SHA, base="b" * 40, workflows=[motd])


@pytest.mark.parametrize(
    ("pr", "thread"), [(GITHUB_PR, "github:acme/workflows#7"), (GITLAB_MR, "gitlab:42!3")]
)
async def test_the_comment_is_created_once_then_updated_in_place(
    fake: FakeNotifyServer, pr: PullRequest, thread: str
) -> None:
    out = publisher(fake)
    await out.comment(pr, report("bonjour"))
    await out.comment(pr, report("salut"))
    [comment] = fake.comments_on(thread)
    assert comment["body"].startswith(MARKER) and "salut" in comment["body"]
    assert out.failures == 0


async def test_statuses_speak_each_forges_words(fake: FakeNotifyServer) -> None:
    out = publisher(fake)
    await out.status(GITHUB_PR, None)
    await out.status(GITLAB_MR, report("x"))
    github, gitlab = fake.received
    assert github.path == f"/repos/acme/workflows/statuses/{SHA}"
    assert (github.body["state"], github.body["context"]) == ("pending", "reconciler/preview")
    assert gitlab.path == f"/api/v4/projects/42/statuses/{SHA}"
    assert (gitlab.body["state"], gitlab.status) == ("success", 201)


@pytest.mark.parametrize(
    ("status", "stall", "said"),
    [(404, 0.0, "HTTP 404"), (503, 0.0, "HTTP 503"), (200, 2.0, "did not answer")],
)
async def test_bad_answers_are_logged_and_counted_not_raised(
    fake: FakeNotifyServer, status: int, stall: float, said: str
) -> None:
    fake.script("/repos/", status, stall=stall)
    out = publisher(fake)
    with structlog.testing.capture_logs() as logs:
        await out.comment(GITHUB_PR, report("bonjour"))
    assert out.failures >= 1
    lines = [entry["event"] for entry in logs]
    assert any(said in line for line in lines), lines
    assert not any(fake.token in str(entry) for entry in logs)


async def test_a_host_the_operator_did_not_allow_gets_nothing(fake: FakeNotifyServer) -> None:
    out = publisher(fake, hosts=("api.github.com",))
    with structlog.testing.capture_logs() as logs:
        await out.status(GITHUB_PR, None)
    assert fake.received == [] and out.failures == 1
    assert "not allowed" in logs[0]["event"]
