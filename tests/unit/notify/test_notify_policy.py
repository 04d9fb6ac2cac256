"""The operator's notification policy (reconciler/notify/policy.py)."""

from __future__ import annotations

import pytest

from reconciler.config.notifications import ProviderType
from reconciler.errors import NotificationRefused
from reconciler.notify.policy import NotifyPolicy


def test_by_default_no_host_is_allowed() -> None:
    with pytest.raises(NotificationRefused, match="--notify-hosts is empty"):
        NotifyPolicy.of(None, None).check_url("chat", "https://hooks.slack.com/services/T/B/secret")


def test_listed_hosts_and_globs_are_allowed_others_refused_by_name() -> None:
    policy = NotifyPolicy.of(["hooks.slack.com", "*.github.example.com", "127.0.0.1:*"], None)
    policy.check_url("chat", "https://hooks.slack.com/services/T/B/C")
    policy.check_url("gh", "https://api.github.example.com/api/v3")
    policy.check_url("local", "http://127.0.0.1:8123/hook")
    with pytest.raises(NotificationRefused) as refused:
        policy.check_url("evil", "https://attacker.example.org/services/T/B/very-secret")
    assert "attacker.example.org" in str(refused.value)
    assert "very-secret" not in str(refused.value)  # the path may be the credential


def test_a_port_in_the_pattern_must_match() -> None:
    policy = NotifyPolicy.of(["hooks.internal:8443"], None)
    policy.check_url("a", "https://hooks.internal:8443/x")
    with pytest.raises(NotificationRefused):
        policy.check_url("a", "https://hooks.internal/x")


def test_user_info_cannot_smuggle_another_host() -> None:
    policy = NotifyPolicy.of(["hooks.slack.com"], None)
    with pytest.raises(NotificationRefused, match=r"evil\.example"):
        policy.check_url("a", "https://hooks.slack.com@evil.example/x")


def test_only_http_urls_are_accepted() -> None:
    with pytest.raises(NotificationRefused, match="not an http"):
        NotifyPolicy.of(["*"], None).check_url("a", "file:///etc/passwd")


def test_provider_types_can_be_narrowed() -> None:
    policy = NotifyPolicy.of(["*"], ["slack"])
    policy.check_type("chat", ProviderType.SLACK)
    with pytest.raises(NotificationRefused, match="type github is not allowed"):
        policy.check_type("gh", ProviderType.GITHUB)
