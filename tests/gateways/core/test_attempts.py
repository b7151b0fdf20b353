"""The gateway link's socket-free bookkeeping: broker liveness and incarnations, and each
request's attempts (only the current attempt's reply counts; a lost broker's calls come back)."""

from __future__ import annotations

from msq.gateways.core.attempts import AttemptTable, BrokerPeer, brokers_by_preference
from msq.proto.deadline import Deadline, DeadlineSource
from msq.proto.messages import Request

DEADLINE = Deadline.after(10.0, DeadlineSource.REQUEST, 0.0)


def request(rid: str) -> Request:
    return Request(0, "add", "add_common", [], rid=rid)


def test_a_peer_is_live_once_heard_and_lost_once_after_its_silence() -> None:
    peer = BrokerPeer("tcp://a")
    assert not peer.live and not peer.check(100.0, 1.5)
    assert peer.heard(1.0, "one") is False  # the first incarnation is not a restart
    assert peer.live
    assert not peer.check(2.5, 1.5)  # silent for exactly the liveness time: still live
    assert peer.check(2.6, 1.5) and not peer.live
    assert not peer.check(3.0, 1.5)  # reported once
    assert peer.heard(4.0, "one") is False and peer.live  # back, same process
    assert peer.heard(4.5) is False  # a reply carries no incarnation
    assert peer.heard(5.0, "two") is True and peer.incarnation == "two"
    assert peer.heard(5.5, "two") is False


def test_each_attempt_has_a_new_id_and_the_time_left() -> None:
    table: AttemptTable[str] = AttemptTable(2)
    call = table.add(request("r1"), DEADLINE, "waiter", 0.0)
    first = table.attempt(call, 0, 1.0)
    assert (first.rid, first.timeout_ms, call.broker) == ("r1", 9000.0, 0)
    second = table.attempt(call, 1, 4.0)
    assert second.request_id != first.request_id
    assert (second.timeout_ms, call.broker, call.attempts) == (6000.0, 1, 2)
    assert table.in_flight() == [0, 1]
    assert table.answered(first.request_id) is None  # an abandoned attempt's reply
    assert table.answered(second.request_id) is call
    assert table.answered(second.request_id) is None  # never answered twice
    assert table.calls() == [] and table.in_flight() == [0, 0]


def test_a_lost_broker_gives_back_its_calls_oldest_first() -> None:
    table: AttemptTable[str] = AttemptTable(2)
    calls = [table.add(request(f"r{i}"), DEADLINE, f"w{i}", 0.0) for i in range(4)]
    sent = [table.attempt(call, i % 2, 0.0) for i, call in enumerate(calls)]
    assert table.in_flight() == [2, 2]
    orphans = table.orphan(0, 2.0)
    assert orphans == [calls[0], calls[2]]
    assert all(call.broker is None and call.waiting_since == 2.0 for call in orphans)
    assert table.in_flight() == [0, 2]
    assert table.waiting() == orphans
    assert table.answered(sent[0].request_id) is None  # the lost broker's late reply
    again = table.attempt(calls[0], 1, 2.5)
    assert table.answered(again.request_id) is calls[0]
    assert table.waiting() == [calls[2]]


def test_an_attempt_no_broker_took_keeps_the_call_waiting_since_it_began() -> None:
    table: AttemptTable[str] = AttemptTable(1)
    call = table.add(request("r"), DEADLINE, "w", 1.0)
    sent = table.attempt(call, 0, 1.5)
    table.unplaced(call)
    assert (call.broker, call.waiting_since, table.in_flight()) == (None, 1.0, [0])
    assert table.answered(sent.request_id) is None
    table.remove(call)
    assert table.calls() == [] and table.waiting() == []


def test_a_peer_is_pinged_often_until_it_is_live() -> None:
    peer = BrokerPeer("tcp://a")
    assert peer.ping_due(0.0, 0.5, 0.05)
    peer.pinged_at = 0.0
    assert not peer.ping_due(0.04, 0.5, 0.05) and peer.ping_due(0.05, 0.5, 0.05)
    peer.heard(0.05, "one")
    assert not peer.ping_due(0.45, 0.5, 0.05) and peer.ping_due(0.5, 0.5, 0.05)


def test_a_restarted_peer_warms_up_before_it_is_ready() -> None:
    peer = BrokerPeer("tcp://a")
    peer.heard(0.0, "one", 2.5)
    assert peer.ready(0.0)  # the first incarnation the link sees: no warm-up
    assert peer.heard(1.0, "two", 2.5)
    assert peer.live and not peer.ready(3.4) and peer.ready(3.5)


def test_an_unreachable_peer_takes_no_requests_until_a_heartbeat_answers() -> None:
    peer = BrokerPeer("tcp://a")
    peer.heard(0.0, "one")
    peer.pinged_at = 0.0
    peer.unreachable()
    assert peer.live and not peer.ready(0.1)
    assert not peer.ping_due(0.04, 0.5, 0.05) and peer.ping_due(0.05, 0.5, 0.05)
    assert not peer.heard(0.1)  # a late reply from before: not the answer awaited
    assert not peer.ready(0.1)
    assert not peer.heard(0.2, "one")  # the same process: ready again at once
    assert peer.ready(0.2) and not peer.ping_due(0.45, 0.5, 0.05)
    peer.unreachable()
    assert peer.heard(0.3, "two", 2.5)  # another process: it warms up first
    assert not peer.ready(2.7) and peer.ready(2.8)


def test_ready_brokers_are_preferred_by_fewest_in_flight() -> None:
    peers = [BrokerPeer("tcp://a"), BrokerPeer("tcp://b"), BrokerPeer("tcp://c")]
    assert brokers_by_preference(peers, [0, 0, 0], 0.0) == []
    for peer in peers:
        peer.heard(0.0, "one")
    assert brokers_by_preference(peers, [3, 1, 1], 0.0) == [1, 2, 0]
    peers[1].check(10.0, 1.5)
    assert brokers_by_preference(peers, [3, 1, 1], 10.0) == [2, 0]
    peers[0].heard(10.0, "restarted", 2.5)
    assert brokers_by_preference(peers, [0, 1, 1], 10.0) == [2]
    assert brokers_by_preference(peers, [0, 1, 1], 12.5) == [0, 2]
