"""The deadlines of the requests in flight, soonest first."""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterator
from typing import Generic, TypeVar

Key = TypeVar("Key")

#: Stale entries tolerated before the heap is rebuilt.
STALE_SLACK = 1024


class DeadlineHeap(Generic[Key]):
    """(deadline, key) pairs in deadline order.

    Answered requests are not removed when they are answered (that would cost a heap search);
    their entries leave at their deadline, or when `watch` finds that stale entries dominate,
    so memory follows the requests in flight, not the request rate.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, Key]] = []

    def __len__(self) -> int:
        return len(self._heap)

    def watch(self, at: float, key: Key, live: Collection[Key]) -> None:
        """Add a deadline; `live` holds the keys still in flight."""
        heapq.heappush(self._heap, (at, key))
        if len(self._heap) > 2 * len(live) + STALE_SLACK:
            self._heap = [entry for entry in self._heap if entry[1] in live]
            heapq.heapify(self._heap)

    def soonest(self) -> float | None:
        """The earliest deadline watched (None: none)."""
        return self._heap[0][0] if self._heap else None

    def due(self, now: float) -> Iterator[Key]:
        """Remove and yield the keys whose deadline is `now` or earlier."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            yield heapq.heappop(heap)[1]
