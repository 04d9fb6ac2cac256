"""Helpers shared by the server-backed built-in plugins (``sql``, ``nats``, ``redis``, ``vault``).

Where it sits: below the plugin modules of this package, which the runner
(``reconciler.engine``) calls through :class:`reconciler.plugin.Plugin`. It holds what every
client of a remote server needs the same way: the ``AuthenticationFailed`` error, the default
retry policy (``http`` uses it too), the seconds an I/O call may take under the action's
deadline, one bounded connect-work-close call, a reachability probe for ``init()``, and the
redaction of free text before it leaves a plugin.
"""

from __future__ import annotations

import asyncio
import contextlib
import json as jsonlib
import os
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from reconciler.config.models import RetryPolicy
from reconciler.errors import ActionError, ConnectionFailed, PluginError, Timeout
from reconciler.plugin import ActionContext
from reconciler.urls import mask_url

__all__ = [
    "SERVER_RETRY",
    "TEXT_CAP",
    "AuthenticationFailed",
    "default_url",
    "parse_json",
    "payload_text",
    "probe_tcp",
    "redact_all",
    "redact_json",
    "seconds_for",
    "with_connection",
]

C = TypeVar("C")
T = TypeVar("T")

SERVER_RETRY = RetryPolicy(attempts=3, delay=timedelta(seconds=1), max_delay=timedelta(seconds=30))
"""The default retry of every plugin that talks to a server (``http``, ``sql``, ``nats``,
``redis``, ``vault``): three tries, 1 s apart doubling up to 30 s; a state's ``retry`` replaces
it. Shared by all of them (a policy is immutable)."""

TEXT_CAP = 64 * 1024
"""Bytes of a received payload kept in a response's text (``nats`` messages, ``redis`` values)."""


class AuthenticationFailed(PluginError):
    """The server refused the credentials (not retryable: the same credentials fail again)."""

    retryable = False


def seconds_for(limit: timedelta, context: ActionContext) -> float:
    """The request's own ``limit`` bounded by what is left of the action's deadline."""
    seconds = limit.total_seconds()
    left = context.time_left()
    return min(seconds, left) if left is not None else seconds


async def with_connection(
    *,
    seconds: float,
    where: str,
    connect: Callable[[], Awaitable[C]],
    work: Callable[[C], Awaitable[T]],
    close: Callable[[C], Awaitable[object]],
    expected: tuple[type[BaseException], ...],
    map_error: Callable[[BaseException], ActionError],
) -> T:
    """Connect, do ``work``, close: the one call shape of the ``nats`` and ``redis`` plugins.

    Connecting and working together are bounded by ``seconds`` (running out raises
    :class:`Timeout` naming ``where``). An :class:`ActionError` passes through as it is; an
    exception of the ``expected`` classes becomes ``map_error(exc)``; anything else propagates.
    The client, once connected, is always closed, shielded from cancellation, and a failure
    to close is ignored (the answer, or the first error, is what the caller gets).
    """
    client: C | None = None
    try:
        async with asyncio.timeout(seconds):
            client = await connect()
            return await work(client)
    except ActionError:
        raise
    except TimeoutError:
        raise Timeout(f"{where}: no answer within {seconds:g}s") from None
    except expected as exc:
        raise map_error(exc) from None
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(close(client))


def redact_all(text: str, context: ActionContext, extra: Iterable[str] = ()) -> str:
    """``text`` with every secret known to the run and every value of ``extra`` masked."""
    out = context.redact(text)
    for value in sorted((v for v in extra if v and len(v) >= 3), key=len, reverse=True):
        out = out.replace(value, "***")
    return out


def redact_json(value: Any, redact: Callable[[str], str]) -> Any:
    """Parsed JSON with ``redact`` applied to every string in it, keys included."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [redact_json(v, redact) for v in value]
    if isinstance(value, dict):
        return {redact(str(k)): redact_json(v, redact) for k, v in value.items()}
    return value


def payload_text(data: bytes) -> str:
    """The first :data:`TEXT_CAP` bytes of ``data`` as text (invalid UTF-8 replaced)."""
    return data[:TEXT_CAP].decode("utf-8", errors="replace")


def parse_json(data: bytes) -> Any:
    """``data`` parsed as JSON, or ``None`` when it is not JSON."""
    try:
        return jsonlib.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None


def default_url(variable: str) -> str | None:
    """The operator's default server for a plugin, from the daemon's environment, if set."""
    value = os.environ.get(variable, "").strip()
    return value or None


async def probe_tcp(
    url: str,
    *,
    default_port: int,
    what: str,
    limit: float = 3.0,
    redact: Callable[[str], str] = lambda text: text,
) -> None:
    """Open and close a TCP connection to ``url``'s host; raise ``ConnectionFailed`` if it fails.

    Used by ``init()``: the message names the server (credentials masked) and the reason.
    """
    parts = urlsplit(url if "://" in url else f"tcp://{url}")
    host = parts.hostname or "127.0.0.1"
    port = parts.port or default_port
    try:
        async with asyncio.timeout(limit):
            _reader, writer = await asyncio.open_connection(host, port)
        writer.close()
        await writer.wait_closed()
    except (OSError, TimeoutError) as exc:
        reason = f"no answer within {limit:g}s" if isinstance(exc, TimeoutError) else exc
        raise ConnectionFailed(
            f"{what} at {redact(mask_url(url))} is not reachable ({reason})",
            details={"server": redact(mask_url(url))},
        ) from None
