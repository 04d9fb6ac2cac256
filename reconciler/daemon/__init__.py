"""The reconcile daemon (DESIGN §4): settings, planner, queue, scheduler and the controller.

Data flows one way: sources → snapshot → :mod:`~reconciler.daemon.planner` →
:mod:`~reconciler.daemon.queue` → engine runner → store. :mod:`~reconciler.daemon.controller`
wires them together; :mod:`~reconciler.daemon.scheduler` feeds periodic drift checks into the
queue; :mod:`~reconciler.daemon.settings` holds every daemon setting (DESIGN §6).
"""
