"""Notifications: tell chat channels, webhooks and commit statuses what the daemon did.

The repository declares ``kind: Provider`` and ``kind: Alert`` documents
(:mod:`reconciler.config.notifications`); the operator's :class:`NotifyPolicy` decides which
provider types and hosts they may use. The controller wires a :class:`Notifier` in as the
daemon's one event sink: :mod:`events` turns status changes into events, :mod:`alerts` filters
and renders them, :mod:`providers` builds each provider's request, :mod:`delivery` queues,
deduplicates, rate-limits and sends them. ``docs/notifications.md`` is the user's view.

Called by: :mod:`reconciler.daemon` (controller, reconcile), ``reconciler run``.
"""

from reconciler.notify.delivery import Notifier, RetryPolicy, watch_source
from reconciler.notify.events import Event, EventSink, status_events
from reconciler.notify.policy import NotifyPolicy

__all__ = [
    "Event",
    "EventSink",
    "Notifier",
    "NotifyPolicy",
    "RetryPolicy",
    "status_events",
    "watch_source",
]
