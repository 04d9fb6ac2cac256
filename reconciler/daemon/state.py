"""What the daemon's activities share in memory: the current target and the suspensions.

One :class:`DaemonState` per controller. :mod:`reconciler.daemon.revision` replaces its
``target`` at each revision; :mod:`reconciler.daemon.reconcile` reads it for every workflow it
takes from the queue and shrinks ``target.removed``/``target.orphans`` as it retires workflows;
the controller's steering seams (suspend, resume) and the API's view read and change
``suspended``. ``windows`` are the operator's change windows (the windows file, read once at
start), which reconcile and the view apply with each workflow's own. Statuses are not here: they live in the
:class:`~reconciler.daemon.statuses.StatusBook`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.config.models import OperatorWindow
from reconciler.daemon.target import Target


@dataclass
class DaemonState:
    target: Target = field(default_factory=Target)
    suspended: set[str] = field(default_factory=set)
    """Workflows suspended through the API (loaded from their status rows at start)."""
    windows: tuple[OperatorWindow, ...] = ()
    """The operator's change windows (``--windows-file``), each with its selector."""
