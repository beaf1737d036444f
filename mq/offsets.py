"""Contiguous offset tracking: which Kafka offset of a partition may be committed.

Kafka commits a single position per partition ("everything below N is done"). Deliveries can
be settled out of order, so the committable position is the lowest offset not yet settled::

    tracker = OffsetTracker()
    for offset in (7, 8, 9, 10):
        tracker.track(offset)
    tracker.done(10)   # -> None: 7 is still open, nothing new to commit
    tracker.done(7)    # -> 8: offsets below 8 may be committed

``position`` is the committable position, ``committed`` the last one the cluster confirmed.
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["OffsetTracker"]


class OffsetTracker:
    """Offsets of one partition handed out but not yet settled, in delivery order."""

    def __init__(self) -> None:
        self._open: OrderedDict[int, bool] = OrderedDict()
        self.position: int | None = None
        self.committed = -1

    def __len__(self) -> int:
        """Number of tracked offsets not yet committable."""
        return len(self._open)

    def track(self, offset: int) -> None:
        """Record a delivered offset; offsets must arrive in increasing order."""
        last = next(reversed(self._open), self.position)
        if last is not None and offset < last:
            raise ValueError(f"offset {offset} tracked after {last}")
        self._open[offset] = False

    def done(self, offset: int) -> int | None:
        """Mark ``offset`` settled; return the new commit position if it moved, else None."""
        if offset not in self._open:
            return None
        self._open[offset] = True
        moved = False
        while self._open:
            first = next(iter(self._open))
            if not self._open[first]:
                break
            del self._open[first]
            self.position = first + 1
            moved = True
        return self.position if moved else None
