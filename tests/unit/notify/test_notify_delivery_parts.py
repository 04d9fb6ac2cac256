"""The pure parts of delivery: token bucket, deduplication, back-off, Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from reconciler.notify.delivery import (
    MAX_RETRY_AFTER,
    Deduplicator,
    RetryPolicy,
    TokenBucket,
    retry_after,
    retryable,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_a_burst_then_refills_at_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(3, per_minute=6, clock=clock)  # one token every 10 s
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now = 9.9
    assert not bucket.take()
    clock.now = 10.0
    assert bucket.take()
    clock.now = 1000.0  # never more than the burst
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


def test_deduplicator_remembers_the_last_value_per_key_and_stays_bounded() -> None:
    dedup = Deduplicator(size=2)
    key = ("chat", "app", "run")
    assert not dedup.repeat(key, ("run.failed", "r1"))
    dedup.remember(key, ("run.failed", "r1"))
    assert dedup.repeat(key, ("run.failed", "r1"))
    assert not dedup.repeat(key, ("run.failed", "r2"))
    dedup.remember(("chat", "b", "run"), ("x", ""))
    dedup.remember(("chat", "c", "run"), ("x", ""))
    assert not dedup.repeat(key, ("run.failed", "r1"))  # the oldest key was forgotten
    dedup.forget("chat")
    assert not dedup.repeat(("chat", "c", "run"), ("x", ""))


def test_back_off_doubles_up_to_its_cap() -> None:
    assert RetryPolicy().delays() == [1.0, 2.0, 4.0]
    assert RetryPolicy(attempts=6, base=2.0, cap=10.0).delays() == [2.0, 4.0, 8.0, 10.0, 10.0]
    assert RetryPolicy(attempts=1).delays() == []


def test_only_server_errors_throttling_and_no_answer_are_retried() -> None:
    assert retryable(None) and retryable(429) and retryable(500) and retryable(503)
    assert not retryable(400) and not retryable(401) and not retryable(404)


def test_retry_after_reads_seconds_and_dates_and_is_capped() -> None:
    assert retry_after("3") == 3.0
    assert retry_after("100000") == MAX_RETRY_AFTER
    assert retry_after(None) is None and retry_after("soon") is None
    base = datetime(2026, 1, 1, tzinfo=UTC)
    later = format_datetime(base + timedelta(seconds=7), usegmt=True)
    assert retry_after(later, now=base.timestamp()) == 7.0
