"""The broker core's gateway links: which ones heartbeat, when each was last heard.

Part of the sans-IO core (it reads no clock and sends nothing): the core answers each gateway
link's `Heartbeat` with one carrying its incarnation, so that a gateway sees a restarted broker at
once. A gateway link silent for `worker_expiry_s` is forgotten and its requests are cancelled (its
process died: nobody waits for their replies); at shutdown, gateway links are told (`Disconnect`)
so that they send their requests to another broker.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from msq.broker.requests import RequestTable
from msq.broker.settings import BrokerSettings

#: The core's logger: these lines are the core's.
log = logging.getLogger("msq.broker.core")


class GatewayLinks:
    """The gateway links that heartbeat (iterating gives their identities)."""

    def __init__(self, requests: RequestTable, settings: BrokerSettings) -> None:
        #: When each link was last heard.
        self.last_heard: dict[bytes, float] = {}
        self._requests = requests
        self._settings = settings

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.last_heard)

    def __len__(self) -> int:
        return len(self.last_heard)

    def heard(self, client: bytes, now: float) -> None:
        """A heartbeat from `client`: it is alive (and heartbeats from now on)."""
        self.last_heard[client] = now

    def forget_silent(self, now: float) -> None:
        """Forget each link silent for longer than `worker_expiry_s`, cancelling its requests."""
        for client, last_seen in list(self.last_heard.items()):
            if now - last_seen > self._settings.worker_expiry_s:
                del self.last_heard[client]
                dropped = self._requests.cancel_client(client)
                log.warning(
                    "gateway link %s silent for %.1f s: dropped its %d requests",
                    client.hex(), now - last_seen, dropped,
                )  # fmt: skip

    def expiries(self) -> Iterator[float]:
        """When each link counts as silent if not heard again."""
        expiry_s = self._settings.worker_expiry_s
        return (seen + expiry_s for seen in self.last_heard.values())

    def leave(self) -> list[bytes]:
        """The broker is going away: cancel each link's requests (the link sends them to another
        broker); the links to tell."""
        for client in self.last_heard:
            self._requests.cancel_client(client)
        return list(self.last_heard)
