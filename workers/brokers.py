"""One broker as a worker sees it: its DEALER, the registration on it, and its liveness.

A worker holds one `BrokerConnection` per broker (`msq-worker --broker A,B`) and registers with
each, announcing its whole capacity to each (see `msq.workers.loop`). A connection is
registered (a DEALER that sent `Ready`) or waiting to register again: after the broker was
silent for the liveness time, asked the worker to register again (`Disconnect`) or came back as
another incarnation, the connection closes its DEALER and registers on a new one, at once the
first time and then after 1 s, 2 s, ... up to the longest retry delay while the broker stays
away. Each registration has a new `generation`: the jobs of an earlier one belong to a broker
that has forgotten them, so they are dropped (unstarted) or their results discarded.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import zmq

from msq.proto import transport
from msq.proto.curve import CurveClient
from msq.proto.messages import Drain, Heartbeat, Message, Ready

logger = logging.getLogger("msq.workers.loop")

Socket = zmq.Socket[Any]


class BrokerConnection:
    """The worker's link to one broker (used from the worker's main thread only, except
    `generation`, which the compute thread reads)."""

    def __init__(
        self,
        address: str,
        context: zmq.Context[Any],
        ready: Ready,
        *,
        heartbeat_s: float,
        liveness_s: float,
        max_retry_delay_s: float,
        curve: CurveClient | None = None,
    ) -> None:
        self.address = address
        self.curve = curve
        self.ready = ready
        self.heartbeat_s = heartbeat_s
        self.liveness_s = liveness_s
        self.max_retry_delay_s = max_retry_delay_s
        self.dealer: Socket | None = None
        #: Registrations so far; a job is valid only in the generation it came in.
        self.generation = 0
        #: The broker's incarnation as its heartbeats report it ("" until the first one).
        self.incarnation = ""
        #: Set by `leave`: the worker drains before it goes; `drained` once this broker let it
        #: go (answered `Drain`), forgot it or went silent, or was never registered with.
        self.leaving = False
        self.drained = False
        self._context = context
        self._retry_delay_s = 0.0
        self._register_at = 0.0
        self._last_heard = self._last_sent = 0.0
        #: Whether this registration's dropped messages were logged (once per registration).
        self._drops_logged = False

    def register(self, now: float) -> None:
        """Open a new DEALER and send `Ready`."""
        self.close()
        self.generation += 1
        self.incarnation = ""
        self.dealer = transport.dealer(self._context, self.address, curve=self.curve)
        self._drops_logged = False
        self._last_heard = now
        self.send(self.ready, now)
        logger.info("registered with broker %s", self.address)

    def register_again(self, now: float, why: str) -> None:
        """Drop this registration and register anew after the current retry delay (while
        leaving: this broker is done with the worker)."""
        if self.leaving:
            logger.info("broker %s %s while draining: leaving it", self.address, why)
            self.close()
            self.drained = True
            return
        logger.warning("broker %s %s: registering again", self.address, why)
        self.close()
        self._register_at = now + self._retry_delay_s
        self._retry_delay_s = min(max(1.0, self._retry_delay_s * 2), self.max_retry_delay_s)

    def leave(self, now: float) -> None:
        """Start draining: ask the broker with `Drain` to route this worker nothing new and to
        say when it may go."""
        self.leaving = True
        if self.dealer is None:
            self.drained = True
        else:
            self.send(Drain("worker shutting down"), now)

    def heard(self, now: float) -> None:
        """The broker sent something."""
        self._last_heard = now

    def answered(self) -> None:
        """The broker sent a job or a heartbeat: it knows this worker, retries start over."""
        self._retry_delay_s = 0.0

    def restarted(self, incarnation: str) -> bool:
        """Whether a heartbeat's `incarnation` shows another broker process than before."""
        known, self.incarnation = self.incarnation, incarnation
        return bool(known) and known != incarnation

    def due(self, now: float) -> float:
        """When `step` has something to do next."""
        if self.dealer is None:
            return self._register_at
        return min(self._last_sent + self.heartbeat_s, self._last_heard + self.liveness_s)

    def step(self, now: float) -> bool:
        """Register when it is time, notice a silent broker, heartbeat; True if registered."""
        if self.dealer is None:
            if self.leaving or now < self._register_at:
                return False
            self.register(now)
            return True
        if now - self._last_heard > self.liveness_s:
            self.register_again(now, f"silent for {self.liveness_s:.1f} s")
        elif now - self._last_sent >= self.heartbeat_s:
            self.send(Heartbeat(), now)
        return False

    def send(self, message: Message, now: float | None = None) -> None:
        """Send a message (dropped, with a warning, if the broker takes no more)."""
        self.send_frames(transport.frames_of(message), now)

    def send_frames(self, frames: list[Any], now: float | None = None) -> None:
        """Send encoded frames, as `send` does (a message the broker does not take is dropped:
        one warning per registration)."""
        if self.dealer is None:
            return
        sent_at = time.monotonic() if now is None else now
        try:
            self.dealer.send_multipart(frames, copy=False, flags=zmq.NOBLOCK)
        except zmq.Again:
            # Counted as sent: retrying at once would spin while the broker is unreachable.
            if not self._drops_logged:
                self._drops_logged = True
                logger.warning(
                    "broker %s is not taking messages (unreachable, or it refused this worker's "
                    "CURVE key): dropping them until it does",
                    self.address,
                )
        self._last_sent = sent_at

    def close(self, linger_ms: int = 0) -> None:
        """Close the DEALER (a registration ends); `linger_ms` lets what was sent go out."""
        if self.dealer is not None:
            self.dealer.close(linger=linger_ms)
            self.dealer = None


def first_due(connections: list[BrokerConnection], now: float) -> float:
    """Seconds until the first connection has something to do (0 when overdue)."""
    due = min((connection.due(now) for connection in connections), default=math.inf)
    return max(0.0, due - now)
