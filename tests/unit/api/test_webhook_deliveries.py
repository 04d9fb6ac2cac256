"""The memory of recent webhook deliveries: a delivery seen within its time is refused, memory
stays bounded in count and in age whatever arrives."""

from __future__ import annotations

from reconciler.api.webhooks import RecentDeliveries


class Clock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_delivery_is_new_once_and_a_repeat_is_not() -> None:
    recent = RecentDeliveries()
    assert recent.first_time("github:id:1", "github:body:aa")
    assert not recent.first_time("github:id:1", "github:body:aa")


def test_any_key_seen_before_makes_the_delivery_a_repeat() -> None:
    recent = RecentDeliveries()
    assert recent.first_time("github:id:1", "github:body:aa")
    assert not recent.first_time("github:id:2", "github:body:aa")  # same body, new id
    assert not recent.first_time("github:id:1", "github:body:bb")  # same id, new body
    assert recent.first_time("github:id:3", "github:body:cc")


def test_a_delivery_is_forgotten_after_its_time() -> None:
    clock = Clock()
    recent = RecentDeliveries(ttl=60, clock=clock)
    assert recent.first_time("a")
    clock.now += 59
    assert not recent.first_time("a")  # and remembered again from now
    clock.now += 60
    assert recent.first_time("a")
    clock.now += 61
    assert recent.first_time("b")
    assert len(recent) == 1  # "a" expired and was dropped


def test_memory_keeps_only_the_most_recent_deliveries() -> None:
    recent = RecentDeliveries(size=3)
    for key in "abcde":
        assert recent.first_time(key)
    assert len(recent) == 3
    assert recent.first_time("a")  # the oldest were forgotten first
    assert not recent.first_time("e")
