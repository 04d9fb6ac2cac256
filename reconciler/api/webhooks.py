"""Push webhooks from GitHub, GitLab or anything that can sign a body.

A correctly signed push of the tracked branch asks the daemon's source to fetch at once instead
of waiting for the next poll (:meth:`~reconciler.api.view.DaemonView.fetch_now`). Nothing from
the payload is trusted beyond "something was pushed": the new revision is whatever the fetch
finds. A signed pull request (GitHub ``pull_request``) or merge request (GitLab ``Merge Request
Hook``) event starts a preview of its head commit in the background
(:meth:`~reconciler.api.view.DaemonView.preview_pull_request`; which actions do is
:mod:`reconciler.api.pulls`): the answer is 202 at once, the result goes back to the forge as a
commit status and one comment. Nothing a preview does runs a state or writes a status.

- ``POST /hooks/github``: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`` and
  ``X-GitHub-Delivery: <id>``; ``X-GitHub-Event: push`` of ``refs/heads/<tracked branch>``
  triggers, ``ping`` answers 200 (everything else 202).
- ``POST /hooks/gitlab``: ``X-Gitlab-Token: <secret>`` and ``Idempotency-Key`` or
  ``X-Gitlab-Event-UUID``; ``X-Gitlab-Event: Push Hook``.
- ``POST /hooks/generic``: ``X-Signature-Timestamp: <unix seconds>``, ``X-Delivery-Id: <id>`` and
  ``X-Signature-256: sha256=<hex HMAC-SHA256 of "<timestamp>.<delivery id>." + raw body>``
  (:func:`sign_generic`); any body, always triggers. A timestamp more than
  :data:`TIMESTAMP_TOLERANCE` away from the daemon's clock is refused.

Replays: a delivery whose id (or, for GitHub and GitLab, whose exact body) was handled before is
refused with 409 ``duplicate_delivery`` and triggers nothing. GitHub's and GitLab's ids are not
covered by their signature, so their bodies are remembered too: a replay with a new id is still
the same body. The daemon remembers deliveries in memory (:class:`RecentDeliveries`, bounded in
count and age), per process: after a restart, or on another replica, a replayed GitHub or GitLab
delivery is accepted once more, which only makes the daemon fetch again; a generic one only
within its timestamp's tolerance.

The secret is the daemon's webhook secret (``RECONCILER_WEBHOOK_SECRET`` or
``--webhook-secret-file``); every comparison is :func:`hmac.compare_digest`. Bodies over
:data:`MAX_BODY` are refused with 413 before being read whole; a missing or wrong signature is 401
and triggers nothing (and is not remembered); a missing delivery id or timestamp is 400; with no
secret configured every hook answers 403 saying how to set one. Events that are valid but not for
us (another branch, a tag, an issue event) answer 202 with ``triggered: false`` and the reason,
so the provider's delivery log shows why.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import structlog
from fastapi import APIRouter, Request, Response
from pydantic import SecretStr

from reconciler.api.auth import ApiError
from reconciler.api.models import ErrorResponse, HookResult
from reconciler.api.pulls import github_pull_request, gitlab_merge_request
from reconciler.api.view import DaemonView
from reconciler.notify.previews import PullRequest

log = structlog.get_logger("reconciler.api.hooks")

MAX_BODY = 1024 * 1024
"""Largest webhook body accepted (1 MiB); GitHub caps its payloads at 25 MB, pushes are small."""

TIMESTAMP_TOLERANCE = 300.0
"""Seconds a generic delivery's signed timestamp may be away from the daemon's clock (as Stripe
and Slack do): an older delivery is refused, whatever its id."""

DELIVERY_MEMORY = 3 * 24 * 3600.0
"""Seconds a delivery is remembered: GitHub lets a delivery be redelivered for three days."""

DELIVERY_MEMORY_SIZE = 10_000
"""Most deliveries remembered at once (the oldest are forgotten first); only deliveries that
passed the signature check are remembered, so strangers cannot fill it."""

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 409, 413)
}


class RecentDeliveries:
    """The webhook deliveries handled lately: at most ``size`` keys, each for ``ttl`` seconds.

    :meth:`first_time` is the one operation: it says whether none of the keys was seen within
    ``ttl`` and remembers them all. It does not await, so two identical deliveries arriving at
    once cannot both pass.
    """

    def __init__(
        self,
        *,
        ttl: float = DELIVERY_MEMORY,
        size: int = DELIVERY_MEMORY_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.size = size
        self._clock = clock
        self._expires: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expires)

    def first_time(self, *keys: str) -> bool:
        now = self._clock()
        while self._expires and next(iter(self._expires.values())) <= now:
            self._expires.popitem(last=False)
        seen = any(key in self._expires for key in keys)
        for key in keys:
            self._expires.pop(key, None)
            self._expires[key] = now + self.ttl
        while len(self._expires) > self.size:
            self._expires.popitem(last=False)
        return not seen


def sign(secret: str | bytes, body: bytes) -> str:
    """``sha256=<hex>``: the signature GitHub sends for ``body``."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def sign_generic(secret: str | bytes, body: bytes, *, timestamp: int, delivery: str) -> str:
    """``sha256=<hex>``: the signature ``/hooks/generic`` expects, over
    ``"<timestamp>.<delivery id>."`` followed by the raw ``body``."""
    return sign(secret, f"{timestamp}.{delivery}.".encode() + body)


async def read_limited(request: Request, *, limit: int = MAX_BODY) -> bytes:
    """The raw body, refusing (413) one over ``limit`` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"webhook bodies are limited to {limit} bytes")


def _signature_ok(secret: SecretStr, signed: bytes, given: str | None) -> bool:
    if not given:
        return False
    expected = sign(secret.get_secret_value(), signed)
    return hmac.compare_digest(given.strip().encode("utf-8"), expected.encode("utf-8"))


def _body_key(provider: str, body: bytes) -> str:
    return f"{provider}:body:{hashlib.sha256(body).hexdigest()}"


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ApiError(400, "invalid_payload", "the webhook body is not JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_payload", "the webhook body is not a JSON object")
    return data


def hooks_router(view: DaemonView) -> APIRouter:
    """The ``/hooks/*`` routes of the daemon behind ``view``."""
    router = APIRouter(prefix="/hooks", tags=["webhooks"], responses=_ERRORS)
    recent = RecentDeliveries()

    def secret() -> SecretStr:
        value = view.settings.webhook_secret
        if value is None or not value.get_secret_value():
            raise ApiError(
                403,
                "no_webhook_secret",
                "webhooks are disabled because the daemon has no webhook secret: start it with "
                "RECONCILER_WEBHOOK_SECRET set or with --webhook-secret-file",
            )
        return value

    def tracked_branch(payload_default: Any) -> str | None:
        branch = view.tracked_branch()
        if branch:
            return branch
        return payload_default if isinstance(payload_default, str) and payload_default else None

    def trigger(provider: str, why: str) -> HookResult:
        log.info(f"{provider} webhook: {why}; fetching now", provider=provider)
        view.fetch_now()
        return HookResult(triggered=True, message=f"{why}; fetching now")

    def ignore(provider: str, why: str) -> HookResult:
        log.info(f"{provider} webhook ignored: {why}", provider=provider)
        return HookResult(triggered=False, message=why)

    def unsigned(provider: str, header: str) -> ApiError:
        log.warning(f"{provider} webhook refused: missing or wrong {header}", provider=provider)
        return ApiError(401, "invalid_signature", f"missing or wrong {header}; nothing triggered")

    def delivery_id(request: Request, *headers: str) -> str:
        for header in headers:
            value = request.headers.get(header, "").strip()
            if value:
                if len(value) > 200:
                    raise ApiError(400, "invalid_delivery", f"{header} is too long")
                return value
        raise ApiError(
            400,
            "missing_delivery_id",
            f"the delivery has no {' or '.join(headers)}: without it a replay cannot be told "
            "apart; nothing triggered",
        )

    def first_delivery(provider: str, delivery: str, *keys: str) -> None:
        if not recent.first_time(f"{provider}:id:{delivery}", *keys):
            log.warning(
                f"{provider} webhook refused: delivery {delivery} was handled before (a replay?)",
                provider=provider,
            )
            raise ApiError(
                409,
                "duplicate_delivery",
                f"delivery {delivery} (or one with the same body) was handled before; "
                "nothing triggered",
            )

    def preview(provider: str, found: PullRequest | str) -> HookResult:
        if isinstance(found, str):
            return ignore(provider, found)
        what = f"{found.repository}#{found.number} at {found.head_sha[:12]}"
        log.info(f"{provider} webhook: previewing {what} in the background", provider=provider)
        view.preview_pull_request(found)
        return HookResult(triggered=True, message=f"previewing {what}")

    def push_of_branch(provider: str, payload: dict[str, Any], default: Any) -> HookResult:
        ref = payload.get("ref")
        if not isinstance(ref, str):
            raise ApiError(400, "invalid_payload", "the push event has no 'ref'")
        branch = tracked_branch(default)
        if branch is not None and ref != f"refs/heads/{branch}":
            return ignore(provider, f"push to {ref}, not the tracked branch {branch}")
        return trigger(provider, f"push to {ref}")

    @router.post(
        "/github",
        response_model=HookResult,
        status_code=202,
        summary="GitHub push webhook (X-Hub-Signature-256, X-GitHub-Delivery)",
    )
    async def github(request: Request, response: Response) -> HookResult:
        key = secret()
        body = await read_limited(request)
        if not _signature_ok(key, body, request.headers.get("x-hub-signature-256")):
            raise unsigned("github", "X-Hub-Signature-256")
        delivery = delivery_id(request, "X-GitHub-Delivery")
        first_delivery("github", delivery, _body_key("github", body))
        event = request.headers.get("x-github-event", "")
        if event == "ping":
            response.status_code = 200
            return HookResult(triggered=False, message="pong")
        if event == "pull_request":
            found = github_pull_request(_json(body), tracked=view.tracked_branch())
            return preview("github", found)
        if event != "push":
            return ignore("github", f"event {event or '(none)'!r} is not a push")
        payload = _json(body)
        repository = payload.get("repository")
        default = repository.get("default_branch") if isinstance(repository, dict) else None
        return push_of_branch("github", payload, default)

    @router.post(
        "/gitlab",
        response_model=HookResult,
        status_code=202,
        summary="GitLab push webhook (X-Gitlab-Token, Idempotency-Key or X-Gitlab-Event-UUID)",
    )
    async def gitlab(request: Request) -> HookResult:
        key = secret()
        given = request.headers.get("x-gitlab-token", "")
        if not given or not hmac.compare_digest(
            given.encode("utf-8"), key.get_secret_value().encode("utf-8")
        ):
            raise unsigned("gitlab", "X-Gitlab-Token")
        body = await read_limited(request)
        delivery = delivery_id(request, "Idempotency-Key", "X-Gitlab-Event-UUID")
        first_delivery("gitlab", delivery, _body_key("gitlab", body))
        event = request.headers.get("x-gitlab-event", "")
        if event == "Merge Request Hook":
            found = gitlab_merge_request(_json(body), tracked=view.tracked_branch())
            return preview("gitlab", found)
        if event != "Push Hook":
            return ignore("gitlab", f"event {event or '(none)'!r} is not a Push Hook")
        payload = _json(body)
        project = payload.get("project")
        default = project.get("default_branch") if isinstance(project, dict) else None
        return push_of_branch("gitlab", payload, default)

    @router.post(
        "/generic",
        response_model=HookResult,
        status_code=202,
        summary="Generic webhook (X-Signature-256 over timestamp, delivery id and body)",
    )
    async def generic(request: Request) -> HookResult:
        key = secret()
        body = await read_limited(request)
        stamp = request.headers.get("x-signature-timestamp", "").strip()
        delivery = request.headers.get("x-delivery-id", "").strip()
        if not stamp.isdigit() or not delivery or len(delivery) > 200:
            raise ApiError(
                400,
                "missing_delivery_id",
                "the delivery needs X-Signature-Timestamp (unix seconds) and X-Delivery-Id, "
                "both signed with the body; nothing triggered",
            )
        signed = f"{stamp}.{delivery}.".encode() + body
        if not _signature_ok(key, signed, request.headers.get("x-signature-256")):
            raise unsigned("generic", "X-Signature-256")
        age = time.time() - int(stamp)
        if abs(age) > TIMESTAMP_TOLERANCE:
            log.warning(
                f"generic webhook refused: signed {age:.0f} s away from now (a replay?)",
                provider="generic",
            )
            raise ApiError(
                400,
                "stale_delivery",
                f"X-Signature-Timestamp is {abs(age):.0f} s away from the daemon's clock (more "
                f"than {TIMESTAMP_TOLERANCE:.0f} s); nothing triggered",
            )
        first_delivery("generic", delivery)
        return trigger("generic", "signed notification")

    return router
