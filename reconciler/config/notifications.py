"""The notification documents of a repository: ``kind: Provider`` and ``kind: Alert``.

A **Provider** says where messages go (a Slack or Microsoft Teams webhook, a generic signed
webhook, GitHub or GitLab commit statuses) and where its credential comes from (a secret
reference, never a value). An **Alert** says which events of which workflows go to which
providers, with a summary template. Both are pydantic models, like :class:`Workflow`: they
validate a parsed document, document every field and appear in ``reconciler schema``.

Nothing here sends anything or resolves secrets. :mod:`reconciler.config.loader` builds these
models from files (beside workflows), :class:`~reconciler.config.snapshot.Snapshot` checks that
each alert's providers exist, and :mod:`reconciler.notify` delivers, under the operator's
policy (which provider types and hosts a repository may send to).
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from reconciler.config.models import NAME_PATTERN, Metadata, SecretRef
from reconciler.types import Duration, Model


class ProviderType(StrEnum):
    """What a provider talks to."""

    SLACK = "slack"
    TEAMS = "teams"
    WEBHOOK = "webhook"
    GITHUB = "github"
    GITLAB = "gitlab"


COMMIT_STATUS_TYPES = frozenset({ProviderType.GITHUB, ProviderType.GITLAB})
"""Providers that set a status on the commit a workflow runs at, rather than post a message."""

DEFAULT_ADDRESSES = {
    ProviderType.GITHUB: "https://api.github.com",
    ProviderType.GITLAB: "https://gitlab.com",
}
"""API base URLs used when a commit-status provider gives no ``address``."""


class EventType(StrEnum):
    """What happened to a workflow (or to the source of workflow files)."""

    CONVERGED = "status.converged"
    DEGRADED = "status.degraded"
    INVALID = "status.invalid"
    SUSPENDED = "status.suspended"
    RUN_STARTED = "run.started"
    RUN_SUCCEEDED = "run.succeeded"
    RUN_FAILED = "run.failed"
    AWAITING_APPROVAL = "run.awaiting_approval"
    DRIFT_DETECTED = "drift.detected"
    DRIFT_HEALED = "drift.healed"
    SOURCE_FAILING = "source.failing"
    SOURCE_RECOVERED = "source.recovered"


ERROR_EVENTS = frozenset(
    {
        EventType.DEGRADED,
        EventType.INVALID,
        EventType.RUN_FAILED,
        EventType.SOURCE_FAILING,
    }
)
"""Events of severity ``error``; every other event is ``info``."""

Severity = Literal["info", "error"]

TEMPLATE_FIELDS = frozenset(
    {"event", "workflow", "revision", "status", "reason", "message", "url", "severity", "run"}
)
"""The placeholders a summary template may use, as ``{{ name }}``."""

TEMPLATE_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")

DEFAULT_SUMMARY = "{{ workflow }}: {{ event }} at {{ revision }}: {{ message }}"


class RateLimit(Model):
    """A token bucket: ``burst`` messages at once, refilled at ``per_minute``."""

    burst: int = Field(10, ge=1, le=1000, description="Messages that may go out at once.")
    per_minute: float = Field(
        10, gt=0, le=6000, description="Messages the bucket refills per minute."
    )


class ProviderSpec(Model):
    """Where a provider sends, and the secret it needs.

    - ``slack``/``teams``: the webhook URL, as ``address`` or (better: the URL is the
      credential) as ``secretRef``; exactly one of the two.
    - ``webhook``: ``address`` (required); ``secretRef`` is the HMAC key signing each body.
    - ``github``/``gitlab``: ``repository`` (``owner/name``; GitLab: a project id or path),
      ``secretRef`` the API token (required), ``address`` the API base URL (GitHub Enterprise:
      ``https://ghe.example.com/api/v3``; self-managed GitLab: its root URL).
    """

    type: ProviderType = Field(description="slack, teams, webhook, github or gitlab.")
    address: str | None = Field(
        None,
        pattern=r"^https?://[^\s]+$",
        description="URL (webhook) or API base URL (github, gitlab). Never a credential.",
    )
    secret_ref: SecretRef | None = Field(
        None,
        description="Webhook URL (slack, teams), HMAC key (webhook) or API token (github, "
        "gitlab), as a secret reference.",
    )
    repository: str | None = Field(
        None,
        min_length=1,
        pattern=r"^[A-Za-z0-9_.\-/]+$",
        description="owner/name (github) or project id or path (gitlab).",
    )
    context: str = Field(
        "reconciler",
        min_length=1,
        max_length=100,
        description="Commit status context/name; the workflow's name is appended.",
    )
    timeout: Duration = Field(timedelta(seconds=10), description="Deadline of one request.")
    rate_limit: RateLimit = Field(default_factory=RateLimit)

    @model_validator(mode="after")
    def _fields_for_type(self) -> ProviderSpec:
        kind = self.type
        if kind in (ProviderType.SLACK, ProviderType.TEAMS):
            if (self.address is None) == (self.secret_ref is None):
                raise ValueError(
                    f"a {kind.value} provider needs its webhook URL as either `address` or "
                    "`secretRef` (one of the two)"
                )
        elif kind is ProviderType.WEBHOOK:
            if self.address is None:
                raise ValueError("a webhook provider needs `address`")
        else:
            missing = [k for k in ("repository", "secret_ref") if getattr(self, k) is None]
            if missing:
                names = ", ".join(f"`{'secretRef' if m == 'secret_ref' else m}`" for m in missing)
                raise ValueError(f"a {kind.value} provider needs {names}")
        if kind is ProviderType.GITHUB and self.repository and self.repository.count("/") != 1:
            raise ValueError("a github repository is written owner/name")
        return self

    @property
    def base_address(self) -> str | None:
        """The URL requests go to before any secret is resolved (``None``: from the secret)."""
        return self.address or DEFAULT_ADDRESSES.get(self.type)


class Provider(Model):
    """One notification provider document."""

    api_version: Literal["reconciler/v1"]
    kind: Literal["Provider"]
    metadata: Metadata
    spec: ProviderSpec

    @property
    def name(self) -> str:
        return self.metadata.name


ProviderName = Annotated[str, Field(max_length=63, pattern=NAME_PATTERN)]


class AlertSpec(Model):
    """Which events go to which providers, and how their summary reads."""

    provider_refs: list[ProviderName] = Field(
        min_length=1, description="Names of the Provider documents to send to."
    )
    events: list[EventType] = Field(
        default_factory=list, description="Event types sent; empty: every event."
    )
    workflows: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=lambda: ["*"],
        description="Workflow names or globs ('payments-*'); default every workflow.",
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Only workflows carrying all these metadata.labels (source events excepted).",
    )
    severity: Severity = Field(
        "info", description="Lowest severity sent: info (everything) or error (failures only)."
    )
    summary: str = Field(
        DEFAULT_SUMMARY,
        min_length=1,
        max_length=2000,
        description="Message template; {{ workflow }}, {{ event }}, {{ revision }}, "
        "{{ status }}, {{ reason }}, {{ message }}, {{ url }}, {{ severity }}, {{ run }}.",
    )
    suspend: bool = Field(False, description="Send nothing while true.")

    @field_validator("summary")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        unknown = sorted(
            {m.group(1) for m in TEMPLATE_PLACEHOLDER.finditer(value)} - TEMPLATE_FIELDS
        )
        if unknown:
            raise ValueError(
                f"unknown placeholder {{{{ {unknown[0]} }}}} in summary; known: "
                + ", ".join(sorted(TEMPLATE_FIELDS))
            )
        return value


class Alert(Model):
    """One alert document."""

    api_version: Literal["reconciler/v1"]
    kind: Literal["Alert"]
    metadata: Metadata
    spec: AlertSpec

    @property
    def name(self) -> str:
        return self.metadata.name


def severity_of(event: EventType) -> Severity:
    """``error`` for failures (see :data:`ERROR_EVENTS`), else ``info``."""
    return "error" if event in ERROR_EVENTS else "info"
