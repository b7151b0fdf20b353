"""The broker's relay of model control: gateways' repository commands to the controller and its
answers back (sans-IO, driven by `BrokerCore.on_control`).

The controller (`msq serve`'s `msq.launcher.control`) connects to the frontend like a gateway
and announces itself with `ControllerReady`; the last peer that did is the controller. A
command is renumbered for the controller, so that commands of several gateways never collide,
and its answer is renumbered back. With no controller (a broker whose workers were started
some other way), the broker answers itself: the index lists the running versions as READY, and
a load or unload is refused as in Triton's modes other than explicit.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import TypeAlias

from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import (
    ControllerReady,
    RepositoryAnswer,
    RepositoryCommand,
    RepositoryModel,
    ServableInfo,
)

log = logging.getLogger(__name__)

#: The messages of model control.
ControlMessage: TypeAlias = ControllerReady | RepositoryCommand | RepositoryAnswer
#: Triton's answer to a load or unload when the model control mode is not explicit.
NOT_EXPLICIT = "explicit model load / unload is not allowed if polling is enabled"


class ControlRelay:
    """Relays repository commands between gateways and the controller."""

    def __init__(self, running: Callable[[], list[ServableInfo]]) -> None:
        """`running` lists the running servable versions (the index without a controller)."""
        self.running = running
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
                    return [(peer, self._answer_alone(message))]
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

    def _answer_alone(self, command: RepositoryCommand) -> RepositoryAnswer:
        if command.action != "index":
            failure = Failure(ErrorKind.INVALID_INPUT, NOT_EXPLICIT)
            return RepositoryAnswer(command.request_id, error=failure)
        models = [
            RepositoryModel(info.servable, str(info.version), "READY") for info in self.running()
        ]
        return RepositoryAnswer(command.request_id, models)
