"""Delivery of notifications: the :class:`Notifier` the daemon's controller wires in as its
event sink, and the small pure parts it is made of (token bucket, deduplication, back-off).

What callers may rely on:

- **never blocks a run**: :meth:`Notifier.emit` only matches alerts and puts messages on a
  bounded queue; when the queue is full the oldest message is dropped (counted ``dropped``);
- **deduplication**: per provider and workflow, an event that repeats the last one of its
  family (run outcome, run start, status, drift, source) at the same revision is not sent again
  (``deduplicated``): a workflow failing at one commit and retried is reported once;
- **rate limit** per provider (a token bucket, the Provider's ``rateLimit``): a message over
  the limit is not sent (``rate_limited``), so a flapping workflow cannot flood a channel;
- **retries** with exponential back-off on timeouts, connection errors, 5xx and 429 (which
  honours ``Retry-After``), never on another 4xx; a failed delivery is one log line naming the
  provider, the event and the HTTP status, never the URL (a webhook URL is a credential);
- the operator's :class:`~reconciler.notify.policy.NotifyPolicy` is checked when providers are
  loaded and again against the resolved URL of every request;
- :meth:`Notifier.close` drains the queue for a short while, then gives up (``dropped``).

Everything is counted in ``reconciler_notifications_total{provider,outcome}``.

Called by: the controller (builds it, hands it to the reconciler as its sink, configures it at
each revision, starts and closes it). Calls: the alert filters and templates, the providers'
request builders, the secret resolver, httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

import httpx
import structlog

from reconciler.clock import utcnow
from reconciler.config.notifications import (
    COMMIT_STATUS_TYPES,
    Alert,
    EventType,
    Provider,
    ProviderType,
)
from reconciler.config.snapshot import Problem
from reconciler.errors import NotificationRefused, ReconcilerError
from reconciler.notify.alerts import fields, matches, render, workflow_url
from reconciler.notify.events import Event, status_events
from reconciler.notify.policy import NotifyPolicy
from reconciler.notify.providers import (
    COMMIT_SHA,
    Message,
    Outgoing,
    build_request,
    commit_state,
)
from reconciler.secrets.redaction import register_secret
from reconciler.secrets.resolver import SecretResolver
from reconciler.sources import Source
from reconciler.status import WorkflowStatusRecord
from reconciler.telemetry.metrics import NOTIFICATION_OUTCOMES, NOTIFICATIONS

log = structlog.get_logger("reconciler.notify")

MAX_RETRY_AFTER = 60.0
"""Longest ``Retry-After`` honoured, in seconds (a longer one waits this long)."""


# -- the pure parts ------------------------------------------------------------------------------


class TokenBucket:
    """``burst`` tokens, refilled at ``per_minute``; :meth:`take` spends one if there is one."""

    def __init__(
        self, burst: int, per_minute: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.burst = burst
        self.rate = per_minute / 60.0
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class Deduplicator:
    """Remembers, per key, the last value sent; bounded (the oldest keys are forgotten)."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._last: OrderedDict[tuple[str, ...], tuple[str, ...]] = OrderedDict()

    def repeat(self, key: tuple[str, ...], value: tuple[str, ...]) -> bool:
        """Whether ``value`` is what was last :meth:`remember`-ed under ``key``."""
        return self._last.get(key) == value

    def remember(self, key: tuple[str, ...], value: tuple[str, ...]) -> None:
        self._last[key] = value
        self._last.move_to_end(key)
        while len(self._last) > self.size:
            self._last.popitem(last=False)

    def forget(self, provider: str) -> None:
        """Drop everything remembered for ``provider`` (its document changed)."""
        for key in [k for k in self._last if k[0] == provider]:
            del self._last[key]


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` in all; the n-th retry waits ``base * 2**(n-1)``, at most ``cap``."""

    attempts: int = 4
    base: float = 1.0
    cap: float = 30.0

    def delays(self) -> list[float]:
        """The waits between attempts: ``[1, 2, 4]`` by default."""
        return [min(self.cap, self.base * 2**i) for i in range(self.attempts - 1)]


def retryable(status: int | None) -> bool:
    """Timeouts and connection errors (``None``), 429 and 5xx are retried; other 4xx never."""
    return status is None or status == 429 or status >= 500


def retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or an HTTP date), capped
    at :data:`MAX_RETRY_AFTER`; ``None`` when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return min(MAX_RETRY_AFTER, float(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    wait = when.timestamp() - (now if now is not None else utcnow().timestamp())
    return min(MAX_RETRY_AFTER, max(0.0, wait))


# -- the notifier --------------------------------------------------------------------------------


@dataclass
class _Route:
    """A provider as the notifier uses it: its document, bucket and policy verdict."""

    provider: Provider
    bucket: TokenBucket
    refused: str | None = None


@dataclass(frozen=True)
class _Delivery:
    provider: str
    route: _Route
    message: Message


@dataclass
class _Config:
    routes: dict[str, _Route] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)


class Notifier:
    """Routes the daemon's events to the repository's alerts and delivers them (see the module
    docstring). An :class:`~reconciler.notify.events.EventSink`."""

    def __init__(
        self,
        policy: NotifyPolicy,
        *,
        secrets: SecretResolver,
        external_url: str | None = None,
        queue_size: int = 1000,
        workers: int = 2,
        retry: RetryPolicy | None = None,
        drain_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.secrets = secrets
        self.external_url = external_url
        self.retry = retry or RetryPolicy()
        self.drain_timeout = drain_timeout
        self._clock = clock
        self._queue: asyncio.Queue[_Delivery] = asyncio.Queue(maxsize=queue_size)
        self._workers = workers
        self._in_order: dict[str, asyncio.Lock] = {}
        """One lock per provider: its messages go out in the order they were queued (a
        recovery is never posted before the failure it follows), whichever worker takes them;
        other providers go on meanwhile."""
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None
        self._config = _Config()
        self._dedup = Deduplicator()
        self._reported: set[str] = set()
        """Problems and refusals already logged (once per configuration that has them)."""

    # -- configuration ---------------------------------------------------------------------

    def configure(
        self,
        providers: Mapping[str, Provider],
        alerts: Mapping[str, Alert],
        *,
        problems: Sequence[Problem] = (),
    ) -> None:
        """Use the providers and alerts of a new revision. A provider whose document did not
        change keeps its token bucket and deduplication memory; each refused provider and each
        invalid notification document is logged once (again only after it changed)."""
        before = self._config.routes
        routes: dict[str, _Route] = {}
        for name, provider in sorted(providers.items()):
            old = before.get(name)
            if old is not None and old.provider == provider:
                routes[name] = old
                continue
            self._dedup.forget(name)
            limit = provider.spec.rate_limit
            route = _Route(provider, TokenBucket(limit.burst, limit.per_minute, clock=self._clock))
            route.refused = self._static_refusal(name, provider)
            routes[name] = route
            for outcome in NOTIFICATION_OUTCOMES:
                NOTIFICATIONS.labels(provider=name, outcome=outcome)
        self._config = _Config(routes=routes, alerts=[alerts[n] for n in sorted(alerts)])
        reported: set[str] = set()
        for name, route in routes.items():
            if route.refused is not None:
                key = f"refused:{name}:{route.refused}"
                reported.add(key)
                if key not in self._reported:
                    log.warning(
                        f"{route.refused}; nothing is sent to it (NotificationRefused)",
                        provider=name,
                        error="NotificationRefused",
                    )
        for problem in problems:
            if problem.document is None:
                continue
            key = f"problem:{problem}"
            reported.add(key)
            if key not in self._reported:
                log.warning(
                    f"{problem.document} is invalid and not used: {problem}",
                    file=problem.path,
                    document=problem.document,
                )
        self._reported = reported

    def _static_refusal(self, name: str, provider: Provider) -> str | None:
        """Why the policy refuses ``provider`` before anything is resolved, or ``None``."""
        spec = provider.spec
        try:
            self.policy.check_type(name, spec.type)
            if not self.policy.hosts:
                self.policy.check_url(name, spec.base_address or "https://unknown.invalid/")
            if spec.base_address is not None:
                self.policy.check_url(name, spec.base_address)
        except NotificationRefused as exc:
            return str(exc)
        return None

    # -- the sink --------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether the current revision has any alert (else events are not even derived)."""
        return bool(self._config.alerts)

    def status_stored(
        self,
        old: WorkflowStatusRecord | None,
        new: WorkflowStatusRecord,
        *,
        labels: Mapping[str, str],
    ) -> None:
        """The events of a status change (see :func:`~reconciler.notify.events.status_events`)."""
        if not self._config.alerts:
            return
        revision = new.last_attempted_revision or new.last_applied_revision
        for kind in status_events(old, new):
            self.emit(
                Event(
                    kind,
                    new.name,
                    revision,
                    status=new.status.value,
                    reason=new.reason,
                    message=new.message,
                    run=new.last_run_id,
                    labels=labels,
                )
            )

    def source_changed(self, *, failing: bool, revision: str | None, message: str) -> None:
        """The source started failing (``failing``) or recovered."""
        kind = EventType.SOURCE_FAILING if failing else EventType.SOURCE_RECOVERED
        status = "Failing" if failing else "Healthy"
        self.emit(Event(kind, None, revision, status=status, message=message))

    def approval_requested(
        self,
        *,
        workflow: str,
        run: str,
        revision: str,
        state: str,
        message: str,
        labels: Mapping[str, str],
    ) -> None:
        """A run waits at an approval gate: ``run.awaiting_approval``."""
        if not self._config.alerts:
            return
        self.emit(
            Event(
                EventType.AWAITING_APPROVAL,
                workflow,
                revision or None,
                status="AwaitingApproval",
                reason=state,
                message=message or f"run {run[:8]} waits for an approval in state {state}",
                run=run,
                labels=labels,
            )
        )

    def emit(self, event: Event) -> None:
        """Queue ``event`` for every provider of every alert it matches (never blocks)."""
        config = self._config
        chosen: dict[str, Alert] = {}
        for alert in config.alerts:
            if matches(alert.spec, event):
                for ref in alert.spec.provider_refs:
                    chosen.setdefault(ref, alert)  # the first alert naming a provider wins
        for name, alert in chosen.items():
            route = config.routes.get(name)
            if route is None:
                continue
            self._route(name, route, alert, event)

    def _route(self, name: str, route: _Route, alert: Alert, event: Event) -> None:
        provider = route.provider
        if provider.spec.type in COMMIT_STATUS_TYPES and not _sets_commit_status(event):
            return  # a commit status has nothing to say about this event, or no commit
        if route.refused is not None:
            NOTIFICATIONS.labels(provider=name, outcome="refused").inc()
            return
        key = (name, event.workflow or "", event.family)
        value = (event.type.value, event.revision or "")
        if self._dedup.repeat(key, value):
            NOTIFICATIONS.labels(provider=name, outcome="deduplicated").inc()
            return
        if not route.bucket.take():
            NOTIFICATIONS.labels(provider=name, outcome="rate_limited").inc()
            log.debug(
                f"notification of {event.type.value} to provider {name} rate-limited",
                provider=name,
            )
            return
        self._dedup.remember(key, value)
        link = workflow_url(self.external_url, event.workflow)
        summary = render(alert.spec.summary, fields(event, url=link))
        self._put(_Delivery(name, route, Message(event, summary, link)))

    def _put(self, delivery: _Delivery) -> None:
        if self._queue.full():
            oldest = self._queue.get_nowait()
            self._queue.task_done()
            NOTIFICATIONS.labels(provider=oldest.provider, outcome="dropped").inc()
            log.warning(
                f"notification queue full; dropped the oldest, to provider {oldest.provider}",
                provider=oldest.provider,
            )
        self._queue.put_nowait(delivery)

    # -- running ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the delivery workers (in the running event loop)."""
        if self._tasks:
            return
        self._client = httpx.AsyncClient(follow_redirects=False)
        self._tasks = [
            asyncio.create_task(self._work(), name=f"notify-{i}") for i in range(self._workers)
        ]

    async def close(self) -> None:
        """Deliver what is queued for at most ``drain_timeout`` seconds, then give up on the
        rest (counted ``dropped``) and stop."""
        if not self._tasks:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), self.drain_timeout)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        left = 0
        while not self._queue.empty():
            delivery = self._queue.get_nowait()
            self._queue.task_done()
            NOTIFICATIONS.labels(provider=delivery.provider, outcome="dropped").inc()
            left += 1
        if left:
            log.warning(f"stopping: {left} notifications not delivered (dropped)")
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _work(self) -> None:
        while True:
            delivery = await self._queue.get()
            turn = self._in_order.setdefault(delivery.provider, asyncio.Lock())
            try:
                # taken at once, before the next worker's get() returns: queue order holds
                async with turn:
                    await self.deliver(delivery.provider, delivery.route.provider, delivery.message)
            except Exception as exc:  # a bug must not stop delivery; never log the message
                log.error(
                    f"delivering a notification to provider {delivery.provider} crashed with "
                    f"{type(exc).__name__}; this is a bug",
                    provider=delivery.provider,
                )
            finally:
                self._queue.task_done()

    async def deliver(self, name: str, provider: Provider, message: Message) -> str:
        """Send ``message`` through ``provider`` now, with retries; returns the outcome
        counted (``sent``, ``failed``, ``refused``, or ``skipped`` when there is nothing to
        send)."""
        outgoing = await self._request(name, provider, message)
        if isinstance(outgoing, str):
            return outgoing
        if outgoing is None:
            return "skipped"
        status, why = await self._send(
            outgoing, request_timeout=provider.spec.timeout.total_seconds()
        )
        if status is not None and 200 <= status < 300:
            NOTIFICATIONS.labels(provider=name, outcome="sent").inc()
            log.debug(f"notified provider {name} of {message.event.type.value}", provider=name)
            return "sent"
        NOTIFICATIONS.labels(provider=name, outcome="failed").inc()
        shown = f"HTTP {status}" if status is not None else why
        log.warning(
            f"notification of {message.event.type.value} for "
            f"{message.event.workflow or 'the source'} to provider {name} failed: {shown} "
            "(DeliveryFailed)",
            provider=name,
            http_status=status,
            error="DeliveryFailed",
        )
        return "failed"

    async def _request(
        self, name: str, provider: Provider, message: Message
    ) -> Outgoing | str | None:
        """The request to send, ``None`` if there is none, or the outcome when refused."""
        spec = provider.spec
        secret: str | None = None
        if spec.secret_ref is not None:
            try:
                resolved = await self.secrets.resolve({f"provider {name}": spec.secret_ref})
            except ReconcilerError as exc:
                NOTIFICATIONS.labels(provider=name, outcome="failed").inc()
                log.warning(
                    f"provider {name}: its secret could not be resolved "
                    f"({type(exc).__name__}); nothing sent",
                    provider=name,
                    error=type(exc).__name__,
                )
                return "failed"
            secret = next(iter(resolved.values()))
            register_secret(secret)
        outgoing = build_request(spec, message, secret=secret, timestamp=int(time.time()))
        if outgoing is None:
            return None
        try:
            if spec.type in (ProviderType.SLACK, ProviderType.TEAMS) and spec.address is None:
                self.policy.check_url(name, outgoing.url)  # the URL came from the secret
            elif spec.base_address is not None:
                self.policy.check_url(name, spec.base_address)
        except NotificationRefused as exc:
            NOTIFICATIONS.labels(provider=name, outcome="refused").inc()
            log.warning(f"{exc}; nothing sent (NotificationRefused)", provider=name)
            return "refused"
        return outgoing

    async def _send(self, outgoing: Outgoing, *, request_timeout: float) -> tuple[int | None, str]:
        """POST with retries; the last HTTP status (``None``: no answer) and why it failed."""
        client = self._client
        if client is None:  # used without start() (tests, one-shot use)
            async with httpx.AsyncClient(follow_redirects=False) as own:
                self._client = own
                try:
                    return await self._send(outgoing, request_timeout=request_timeout)
                finally:
                    self._client = None
        delays = self.retry.delays()
        status: int | None = None
        why = ""
        for attempt in range(len(delays) + 1):
            wait: float | None = None
            try:
                response = await client.post(
                    outgoing.url,
                    content=outgoing.body,
                    headers=outgoing.headers,
                    timeout=request_timeout,
                )
            except httpx.TimeoutException:
                status, why = None, "timed out"
            except httpx.HTTPError as exc:
                status, why = None, f"cannot connect ({type(exc).__name__})"
            else:
                status, why = response.status_code, ""
                if 200 <= status < 300:
                    return status, why
                if status == 429:
                    wait = retry_after(response.headers.get("Retry-After"))
            if not retryable(status) or attempt == len(delays):
                break
            await asyncio.sleep(wait if wait is not None else delays[attempt])
        return status, why


def _sets_commit_status(event: Event) -> bool:
    """Whether a commit-status provider has something to set for ``event``: a state for it,
    a workflow and a git commit (a directory source's revisions are not commits)."""
    return (
        commit_state(event.type) is not None
        and event.workflow is not None
        and COMMIT_SHA.match((event.revision or "").lower()) is not None
    )


async def watch_source(
    source: Source, sink: Notifier, *, interval: float = 1.0, stop: asyncio.Event
) -> None:
    """Tell ``sink`` when the source starts failing to fetch, and when it recovers (polls the
    source's ``last_error`` every ``interval`` seconds until ``stop``)."""
    failing = False
    while not stop.is_set():
        error = source.last_error
        if (error is not None) != failing:
            failing = error is not None
            current = source.current
            sink.source_changed(
                failing=failing,
                revision=current.id if current is not None else None,
                message="fetching the repository fails" if failing else "fetching works again",
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
