"""The operator's notification policy: which provider types a repository may declare, and which
hosts its providers may send to (``--notify-provider-types``, ``--notify-hosts``).

The repository is untrusted input: a commit must not be able to make the daemon send its
events, or a token, to a host the operator did not list. The default allows no host at all, so
Provider documents in a repository do nothing until the operator opts in. The check runs when
a revision's providers are loaded (addresses written in the document) and again on every
request (addresses that come from a secret, like a Slack webhook URL, are only known then).

Called by: :class:`reconciler.notify.delivery.Notifier`; ``reconciler run`` builds it from the
settings. Calls: nothing (pure).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

from reconciler.config.notifications import ProviderType
from reconciler.errors import NotificationRefused

ALL_TYPES = frozenset(ProviderType)


@dataclass(frozen=True)
class NotifyPolicy:
    """``hosts``: globs of host names, or ``host:port`` (``*.slack.com``, ``127.0.0.1:*``);
    ``types``: provider types allowed. Empty ``hosts`` allows no host (the default)."""

    hosts: tuple[str, ...] = ()
    types: frozenset[ProviderType] = ALL_TYPES

    @classmethod
    def of(cls, hosts: Iterable[str] | None, types: Iterable[str] | None) -> NotifyPolicy:
        """From the settings' lists; ``types`` ``None`` allows every type."""
        allowed = ALL_TYPES if types is None else frozenset(ProviderType(t) for t in types)
        return cls(hosts=tuple(h.strip().lower() for h in hosts or () if h.strip()), types=allowed)

    def check_type(self, provider: str, kind: ProviderType) -> None:
        """Raise :class:`NotificationRefused` unless providers of ``kind`` are allowed."""
        if kind not in self.types:
            raise NotificationRefused(
                f"provider {provider}: type {kind.value} is not allowed here (the daemon's "
                "--notify-provider-types does not list it)"
            )

    def check_url(self, provider: str, url: str) -> None:
        """Raise :class:`NotificationRefused` unless ``url`` is http(s) to an allowed host.

        The message names the host (never the path or query, which may be the secret).
        """
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host:
            raise NotificationRefused(
                f"provider {provider}: its address is not an http(s) URL with a host"
            )
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise NotificationRefused(
                f"provider {provider}: its address has an invalid port"
            ) from None
        if not self.hosts:
            raise NotificationRefused(
                f"provider {provider}: no host is allowed (the daemon's --notify-hosts is "
                "empty, the default)"
            )
        if not any(_matches(pattern, host, port) for pattern in self.hosts):
            raise NotificationRefused(
                f"provider {provider}: host {host} is not allowed (the daemon's --notify-hosts "
                "does not list it)"
            )


def _matches(pattern: str, host: str, port: int) -> bool:
    name, sep, want_port = pattern.rpartition(":") if ":" in pattern else (pattern, "", "")
    if not sep:
        return fnmatchcase(host, pattern)
    return fnmatchcase(host, name) and fnmatchcase(str(port), want_port)
