"""The broker's relay of model control: gateways' repository commands to the controller and its
answers back (sans-IO, driven by `BrokerCore.on_control`).

The controller (`msq serve`'s `msq.launcher.control`) connects to the frontend like a gateway
and announces itself with `ControllerReady`; the last peer that did is the controller. A
command is renumbered for the controller, so that commands of several gateways never collide,
and its answer is renumbered back. With no controller, a command is answered at once.
"""

from __future__ import annotations

import itertools
import logging
from typing import TypeAlias

from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import ControllerReady, RepositoryAnswer, RepositoryCommand

log = logging.getLogger(__name__)

#: The messages of model control.
ControlMessage: TypeAlias = ControllerReady | RepositoryCommand | RepositoryAnswer
#: The answer when no controller announced itself (a broker started without `msq serve`).
NO_CONTROLLER = "the model repository is not available: no model controller is connected"


class ControlRelay:
    """Relays repository commands between gateways and the controller."""

    def __init__(self) -> None:
        #: The controller's frontend identity and model control mode (None: none seen yet).
        self.controller: bytes | None = None
        self.mode = ""
        self._pending: dict[int, tuple[bytes, int]] = {}
        self._ids = itertools.count(1)

    def on_message(
        self, peer: bytes, message: ControlMessage
    ) -> list[tuple[bytes, ControlMessage]]:
        """The messages to send on the frontend, each to its peer."""
        match message:
            case ControllerReady():
                if peer != self.controller:  # a new controller: the old one's commands are lost
                    log.info("model controller %s (mode %s)", peer.hex(), message.mode)
                    self._pending.clear()
                self.controller, self.mode = peer, message.mode
                return []
            case RepositoryCommand():
                if self.controller is None:
                    failure = Failure(ErrorKind.WORKER_UNAVAILABLE, NO_CONTROLLER)
                    return [(peer, RepositoryAnswer(message.request_id, error=failure))]
                number = next(self._ids)
                self._pending[number] = (peer, message.request_id)
                relayed = RepositoryCommand(number, message.action, message.model)
                return [(self.controller, relayed)]
            case RepositoryAnswer():
                asked = (
                    self._pending.pop(message.request_id, None) if peer == self.controller else None
                )
                if asked is None:
                    log.warning("dropping a repository answer nobody waits for")
                    return []
                client, request_id = asked
                return [(client, RepositoryAnswer(request_id, message.models, message.error))]
