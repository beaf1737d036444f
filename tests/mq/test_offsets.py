"""The contiguous commit position of one partition."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from mq.offsets import OffsetTracker


def tracker_of(offsets: range) -> OffsetTracker:
    tracker = OffsetTracker()
    for offset in offsets:
        tracker.track(offset)
    return tracker


def test_an_ack_past_an_open_offset_does_not_move_the_commit_position() -> None:
    tracker = tracker_of(range(7, 11))
    assert tracker.done(10) is None
    assert tracker.done(8) is None
    assert tracker.position is None  # 7 is still open: nothing may be committed

    assert tracker.done(7) == 9  # 7 and 8 are done, 9 is still open
    assert tracker.done(9) == 11  # 10 was done already: everything up to 10 is committable


def test_settling_an_unknown_or_settled_offset_changes_nothing() -> None:
    tracker = tracker_of(range(3))
    assert tracker.done(0) == 1
    assert tracker.done(0) is None
    assert tracker.done(42) is None
    assert tracker.position == 1


def test_gaps_in_offsets_are_fine() -> None:
    tracker = OffsetTracker()
    for offset in (5, 9, 12):
        tracker.track(offset)
    assert tracker.done(9) is None
    assert tracker.done(5) == 10
    assert tracker.done(12) == 13
    assert len(tracker) == 0


@given(st.integers(min_value=1, max_value=60), st.randoms(use_true_random=False))
def test_the_position_never_passes_the_lowest_open_offset(count: int, rnd: random.Random) -> None:
    tracker = tracker_of(range(count))
    order = list(range(count))
    rnd.shuffle(order)
    for settled, offset in enumerate(order, start=1):
        tracker.done(offset)
        still_open = set(order[settled:])
        expected = min(still_open) if still_open else count
        assert (tracker.position or 0) == expected
