"""The broker's deadline heap: soonest first, stale entries pruned."""

from __future__ import annotations

from msq.broker.deadlines import STALE_SLACK, DeadlineHeap


def test_due_keys_come_out_in_deadline_order_and_only_once() -> None:
    heap: DeadlineHeap[str] = DeadlineHeap()
    for at, key in ((3.0, "c"), (1.0, "a"), (2.0, "b")):
        heap.watch(at, key, live={"a", "b", "c"})
    assert heap.soonest() == 1.0
    assert list(heap.due(2.0)) == ["a", "b"]
    assert list(heap.due(2.0)) == []
    assert heap.soonest() == 3.0
    assert list(heap.due(10.0)) == ["c"]
    assert heap.soonest() is None


def test_entries_of_answered_keys_are_pruned_once_they_dominate() -> None:
    heap: DeadlineHeap[int] = DeadlineHeap()
    live = {0}
    for key in range(STALE_SLACK + 10):
        heap.watch(100.0 + key, key, live)
    assert len(heap) <= 2 * len(live) + STALE_SLACK + 1
    assert 0 in set(heap.due(100.0))
