"""The model controller's link to the brokers (one DEALER each): it announces itself
(`ControllerReady`), answers the repository commands the brokers relay from the gateways, and in
poll mode scans the servable directory every `--repository-poll-secs`.

One thread owns the DEALER (made by `msq.proto.transport`); loads and unloads run in threads of
their own (they wait for workers to get ready or to drain) and hand their answers back through
a queue, so an index is answered while a load is under way.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq

from msq.launcher.control import ControlMode, ModelController
from msq.proto import transport
from msq.proto.curve import CurveClient
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import ControllerReady, RepositoryAnswer, RepositoryCommand
from msq.proto.wire import WireError

log = logging.getLogger(__name__)

#: Seconds between two announcements (a restarted broker learns of the controller again).
ANNOUNCE_S = 2.0
#: Longest wait for a broker message before the loop looks at its other work.
_TICK_MS = 100


class ControlLink:
    """Runs a `ModelController` for the brokers at `frontends`, in a thread of its own; each
    command is answered to the broker that relayed it."""

    def __init__(
        self, controller: ModelController, frontends: list[str], curve: CurveClient | None = None
    ) -> None:
        """`curve`: connect with CURVE, as a gateway does."""
        self.controller = controller
        self.frontends = frontends
        self.curve = curve
        self._answers: queue.SimpleQueue[tuple[int, RepositoryAnswer]] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="msq-model-control", daemon=True)

    def start(self) -> None:
        """Start serving in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop and wait for it (changes under way finish in their threads)."""
        self._stopping.set()
        self._thread.join(timeout=2.0)

    def _run(self) -> None:
        settings = self.controller.settings
        context: zmq.Context[Any] = zmq.Context()
        socks = [
            transport.dealer(context, frontend, curve=self.curve) for frontend in self.frontends
        ]
        poller = zmq.Poller()
        for sock in socks:
            poller.register(sock, zmq.POLLIN)
        next_announce = next_poll = time.monotonic()
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                if now >= next_announce:
                    next_announce = now + ANNOUNCE_S
                    for sock in socks:
                        sock.send_multipart(transport.frames_of(ControllerReady(settings.mode)))
                if settings.mode is ControlMode.POLL and now >= next_poll:
                    next_poll = now + settings.poll_s
                    self._poll()
                events = dict(poller.poll(_TICK_MS))
                for index, sock in enumerate(socks):
                    if sock in events:
                        self._receive(index, sock)
                while not self._answers.empty():
                    index, answer = self._answers.get()
                    socks[index].send_multipart(transport.frames_of(answer))
        finally:
            for sock in socks:
                sock.close(linger=0)
            context.term()

    def _poll(self) -> None:
        try:
            self.controller.poll(_spawn)
        except OSError as exc:  # the directory went away, say: try again at the next poll
            log.error("cannot scan %s: %s", self.controller.settings.servable_dir, exc)

    def _receive(self, index: int, sock: zmq.Socket[Any]) -> None:
        while True:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            try:
                message = transport.message_of(frames)
            except WireError as exc:
                log.warning("dropping a malformed message from the broker: %s", exc)
                continue
            if isinstance(message, RepositoryCommand):
                self._command(index, message)
            else:
                log.warning("dropping an unexpected %s from the broker", type(message).__name__)

    def _command(self, index: int, command: RepositoryCommand) -> None:
        controller = self.controller
        actions: dict[str, Callable[[str], Failure | None]] = {
            "load": controller.load,
            "unload": controller.unload,
        }
        if command.action == "index":
            self._answers.put((index, RepositoryAnswer(command.request_id, controller.index())))
        elif command.action in actions:
            act = actions[command.action]
            _spawn(lambda: self._answer(index, command, act))
        else:
            failure = Failure(
                ErrorKind.INVALID_INPUT, f"unknown repository action {command.action!r}"
            )
            self._answers.put((index, RepositoryAnswer(command.request_id, error=failure)))

    def _answer(
        self, index: int, command: RepositoryCommand, act: Callable[[str], Failure | None]
    ) -> None:
        try:
            failure = act(command.model)
        except Exception as exc:  # a bug must cost one answer, not the controller
            log.exception("%s of %r failed", command.action, command.model)
            failure = Failure(ErrorKind.INTERNAL, f"{command.action} failed: {exc}")
        self._answers.put((index, RepositoryAnswer(command.request_id, error=failure)))


def _spawn(work: Callable[[], object]) -> None:
    """Run `work` in a daemon thread of its own."""
    threading.Thread(target=work, name="msq-model-change", daemon=True).start()
