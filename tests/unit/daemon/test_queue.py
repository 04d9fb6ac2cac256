"""The work queue: dedupe, one run per workflow, concurrency, back-off and dependsOn order."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.daemon.queue import Reason, WorkQueue, backoff_delay


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_adding_a_waiting_key_again_merges_reasons_instead_of_queueing_twice() -> None:
    queue = WorkQueue()
    queue.add("motd", Reason.DRIFT_CHECK)
    queue.add("motd", Reason.MANUAL)
    assert len(queue) == 1
    item = queue.try_get()
    assert item is not None
    assert item.key == "motd"
    assert item.reasons == {Reason.DRIFT_CHECK, Reason.MANUAL}
    assert item.manual
    assert queue.try_get() is None


def test_keys_come_out_in_arrival_order() -> None:
    queue = WorkQueue(max_concurrent=10)
    for key in ("c", "a", "b"):
        queue.add(key)
    keys = [item.key for item in iter(queue.try_get, None)]
    assert keys == ["c", "a", "b"]


def test_key_added_during_its_run_is_handed_out_again_only_after_done() -> None:
    queue = WorkQueue(max_concurrent=4)
    queue.add("motd", Reason.REVISION)
    first = queue.try_get()
    assert first is not None
    queue.add("motd", Reason.REVISION)  # a new revision while the run is in flight
    assert queue.try_get() is None, "a second run of the same workflow must not start"
    queue.done("motd")
    again = queue.try_get()
    assert again is not None
    assert again.key == "motd"
    assert again.reasons == {Reason.REVISION}


def test_no_more_than_max_concurrent_keys_are_in_flight() -> None:
    queue = WorkQueue(max_concurrent=2)
    for key in ("a", "b", "c"):
        queue.add(key)
    a, b = queue.try_get(), queue.try_get()
    assert a is not None and b is not None
    assert queue.try_get() is None
    assert queue.processing == {"a", "b"}
    queue.done("a")
    c = queue.try_get()
    assert c is not None and c.key == "c"


def test_backoff_doubles_from_ten_seconds_and_caps_at_ten_minutes() -> None:
    assert [backoff_delay(n) for n in range(1, 9)] == [10, 20, 40, 80, 160, 320, 600, 600]
    assert backoff_delay(1000) == 600


def test_failed_key_is_retried_only_after_its_backoff_expires() -> None:
    clock = FakeClock()
    queue = WorkQueue(clock=clock)
    queue.add("db")
    item = queue.try_get()
    assert item is not None
    queue.done("db")
    assert queue.fail("db") == 10
    clock.advance(9.9)
    assert queue.try_get() is None
    clock.advance(0.2)
    retry = queue.try_get()
    assert retry is not None
    assert retry.reasons == {Reason.BACKOFF}
    queue.done("db")
    assert queue.fail("db") == 20
    assert queue.failures("db") == 2


def test_forget_resets_backoff_and_drops_the_pending_retry() -> None:
    clock = FakeClock()
    queue = WorkQueue(clock=clock)
    queue.fail("db")
    queue.fail("db")
    queue.forget("db")  # e.g. a new revision arrived
    assert queue.failures("db") == 0
    clock.advance(3600)
    assert queue.try_get() is None
    assert queue.fail("db") == 10


def test_forgetting_many_keys_drops_only_their_backoff_retries() -> None:
    clock = FakeClock()
    queue = WorkQueue(clock=clock, max_concurrent=10)
    for key in ("a", "b", "c"):
        queue.fail(key)
    queue.add_after("a", 5, reason=Reason.WINDOW)  # not a back-off: kept
    queue.forget("a", "b")
    assert (queue.failures("a"), queue.failures("b"), queue.failures("c")) == (0, 0, 1)
    clock.advance(3600)
    handed = {item.key: item.reasons for item in iter(queue.try_get, None)}
    assert handed == {"a": {Reason.WINDOW}, "c": {Reason.BACKOFF}}


def test_hurried_keys_are_handed_out_before_everything_already_waiting() -> None:
    queue = WorkQueue(max_concurrent=10)
    for key in ("a", "b", "c", "d"):
        queue.add(key)
    queue.hurry(["d", "b", "unknown"])  # a key never added is not queued by hurrying
    keys = [item.key for item in iter(queue.try_get, None)]
    assert keys == ["d", "b", "a", "c"]


def test_hurried_key_in_flight_goes_first_when_its_run_is_done() -> None:
    queue = WorkQueue(max_concurrent=1)
    queue.add("changed")
    assert queue.try_get() is not None
    queue.add("changed")  # a new revision changed it while it ran
    for key in ("x", "y"):
        queue.add(key)
    queue.hurry(["changed"])
    queue.done("changed")
    keys = []
    while (item := queue.try_get()) is not None:
        keys.append(item.key)
        queue.done(item.key)
    assert keys == ["changed", "x", "y"]


def test_a_hurried_key_still_waits_for_its_dependency() -> None:
    deps = {"app": ["database"]}
    queue = WorkQueue(max_concurrent=10, dependencies=lambda k: deps.get(k, []))
    queue.add("database")
    queue.add("app")
    queue.hurry(["app"])
    item = queue.try_get()
    assert item is not None and item.key == "database"
    assert queue.try_get() is None


def test_dependent_waits_while_its_dependency_is_queued_or_running() -> None:
    deps = {"app": ["database"], "database": []}
    queue = WorkQueue(max_concurrent=4, dependencies=lambda key: deps.get(key, []))
    queue.add("app")
    queue.add("database")
    first = queue.try_get()
    assert first is not None and first.key == "database"
    assert queue.try_get() is None, "app must wait while database is in flight"
    queue.done("database")
    second = queue.try_get()
    assert second is not None and second.key == "app"


def test_a_dependency_cycle_does_not_stall_the_keys_forever() -> None:
    deps = {"a": ["b"], "b": ["a"]}
    queue = WorkQueue(max_concurrent=1, dependencies=lambda key: deps[key])
    queue.add("a")
    queue.add("b")
    first = queue.try_get()
    assert first is not None
    queue.done(first.key)
    second = queue.try_get()
    assert second is not None
    assert {first.key, second.key} == {"a", "b"}


def test_removed_key_is_not_handed_out() -> None:
    queue = WorkQueue()
    queue.add("gone")
    queue.fail("gone")
    queue.remove("gone")
    assert queue.try_get() is None
    assert not queue.pending("gone")


@pytest.mark.timeout(5)
async def test_get_waits_for_work_and_returns_none_after_shutdown() -> None:
    queue = WorkQueue()
    waiter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)  # one turn of the loop runs the getter up to its wait on the queue
    assert not waiter.done()
    queue.add("motd")
    item = await asyncio.wait_for(waiter, 1)
    assert item is not None and item.key == "motd"
    pending = asyncio.create_task(queue.get())
    await asyncio.sleep(0)  # the getter is waiting on the queue when it shuts down
    assert not pending.done()
    queue.shutdown()
    assert await asyncio.wait_for(pending, 1) is None


@pytest.mark.timeout(5)
async def test_get_wakes_up_when_a_delayed_key_becomes_due() -> None:
    queue = WorkQueue()
    queue.add_after("motd", 0.02, reason=Reason.DRIFT_CHECK)
    item = await asyncio.wait_for(queue.get(), 1)
    assert item is not None
    assert item.reasons == {Reason.DRIFT_CHECK}


@settings(max_examples=200, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["add", "get", "done", "fail", "tick", "hurry", "forget"]),
            st.sampled_from(["a", "b", "c", "d"]),
        ),
        max_size=60,
    ),
    limit=st.integers(min_value=1, max_value=3),
)
def test_queue_invariants_hold_for_any_sequence_of_operations(
    ops: list[tuple[str, str]], limit: int
) -> None:
    """Never over the limit, never one key twice in flight, and nothing added is ever lost."""
    clock = FakeClock()
    deps = {"b": ["a"], "d": ["c"]}
    queue = WorkQueue(max_concurrent=limit, clock=clock, dependencies=lambda k: deps.get(k, []))
    owed: set[str] = set()  # keys added since they were last handed out
    for op, key in ops:
        if op == "add":
            queue.add(key)
            owed.add(key)
        elif op == "get":
            item = queue.try_get()
            if item is not None:
                assert list(queue.processing).count(item.key) == 1
                owed.discard(item.key)
        elif op == "done" and key in queue.processing:
            queue.done(key)
        elif op == "fail" and key in queue.processing:
            queue.fail(key)
            queue.done(key)
        elif op == "tick":
            clock.advance(30)
        elif op == "hurry":
            queue.hurry([key])
        elif op == "forget":
            queue.forget(key)
        assert len(queue.processing) <= limit
    # Drain: finish everything in flight and let every back-off expire.
    for key in list(queue.processing):
        queue.done(key)
    clock.advance(3600)
    handed: list[str] = []
    while (item := queue.try_get()) is not None:
        handed.append(item.key)
        owed.discard(item.key)
        queue.done(item.key)
    assert not owed, f"keys added but never handed out: {owed}"
    assert len(handed) == len(set(handed))
