"""The reconcile daemon: a loop with feedback, one module per activity.

- :mod:`~reconciler.daemon.controller` builds the parts, runs them until stopped and steers
  them (the API's sync, suspend, resume, cancel).
- :mod:`~reconciler.daemon.revision` applies each revision the source delivers: it loads what
  changed, selects the new :mod:`~reconciler.daemon.target` and queues every workflow.
- :mod:`~reconciler.daemon.reconcile` takes workflows from the :mod:`~reconciler.daemon.queue`
  and decides with :mod:`~reconciler.daemon.check` and the pure
  :mod:`~reconciler.daemon.planner`, the stored status (:mod:`~reconciler.daemon.statuses`) as
  input; runs go to :mod:`~reconciler.daemon.runs`. Failures and convergence feed back into the
  queue; :mod:`~reconciler.daemon.scheduler` adds drift checks to it.
- :mod:`~reconciler.daemon.replicas` shares the work between daemons on one PostgreSQL store;
  :mod:`~reconciler.daemon.settings` holds every daemon setting.

``docs/architecture.md`` draws the loop.
"""
