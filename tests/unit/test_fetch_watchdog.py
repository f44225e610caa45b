"""The fetch watchdog's rule: events waiting at an unmoved fetch position for too long."""

from __future__ import annotations

from stream_processors.watchdog import StallWatch, is_input


def test_a_position_that_does_not_move_below_the_end_is_a_stall():
    watch = StallWatch(stall_seconds=60)
    assert watch.observe(0, {"a": 5}, {"a": 9}) == []
    assert watch.observe(59, {"a": 5}, {"a": 9}) == []
    assert watch.observe(60, {"a": 5}, {"a": 9}) == ["a"]


def test_moving_or_caught_up_is_not():
    watch = StallWatch(stall_seconds=60)
    watch.observe(0, {"a": 5, "b": 9}, {"a": 9, "b": 9})
    assert watch.observe(50, {"a": 6, "b": 9}, {"a": 9, "b": 9}) == []  # a moved: counts again
    assert (
        watch.observe(100, {"a": 6, "b": 9}, {"a": 9, "b": 12}) == []
    )  # b: new events, first seen
    assert watch.observe(111, {"a": 6, "b": 9}, {"a": 9, "b": 12}) == ["a"]


def test_no_position_at_all_counts_as_not_moving():
    watch = StallWatch(stall_seconds=10)
    watch.observe(0, {}, {"a": 3})
    assert watch.observe(10, {"a": None}, {"a": 3}) == ["a"]


def test_reset_forgets_everything():
    watch = StallWatch(stall_seconds=10)
    watch.observe(0, {"a": 1}, {"a": 3})
    watch.reset()
    assert watch.observe(10, {"a": 1}, {"a": 3}) == []


def test_only_agents_inputs_are_watched():
    assert is_input("cctv.inbound.selection-decisions.v1")
    assert not is_input("cctv-processors-quota-cameras-changelog")
    assert not is_input("cctv-processors-__assignor-__leader")
