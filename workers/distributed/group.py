"""The worker's side of a distributed servable: its agents, MindSpore's scheduler, supervision.

An `AgentGroup` binds the agent endpoint (a ROUTER made by `msq.proto.transport`), starts
MindSpore's scheduler and, unless the agents are remote, one rank process per rank; it waits
until every rank joined (`AgentJoin` → `AgentPlan`) and loaded its model (`AgentLoaded`). A
call sends the same frames to every first-stage rank and returns the last rank's outputs.

The group is one unit when it fails: a rank process that exits, a rank silent for
`liveness_s` (heartbeats every 0.5 s while idle; during a call, its answer is due within
`liveness_s`) or a scheduler that exits loses the group. `on_lost` is called at once (the
worker deregisters, its in-flight jobs go back to the broker), calls fail with `GroupLostError`,
and the supervisor thread kills every local rank and the scheduler, refuses the remote ranks
still connected (their `msq-agent` starts them again), starts the group again and calls
`on_ready` (the model warms up, the worker registers again).
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from msq.proto import transport
from msq.proto.codec import from_wire, to_wire
from msq.proto.messages import (
    AgentCall,
    AgentJoin,
    AgentLoaded,
    AgentOutputs,
    AgentPlan,
    AgentQuery,
    AgentRanks,
    AgentRefused,
    Heartbeat,
    Message,
)
from msq.proto.wire import WireError
from msq.workers.definition import ServableLoadError
from msq.workers.distributed import processes

logger = logging.getLogger(__name__)

HEARTBEAT_S = 0.5
#: The reason sent to the ranks of a group torn down to start again (they exit to rejoin).
RESTARTS = "the group restarts"
#: Seconds between tries to start a lost group again.
RESTART_DELAY_S = 1.0


class GroupLostError(RuntimeError):
    """The group of ranks is down: a call cannot run until it is started again."""


@dataclass(frozen=True, slots=True)
class GroupSettings:
    """How a worker runs the ranks of its distributed servable."""

    #: HOST:PORT where the agent endpoint binds (port 0: any free port).
    address: str = "127.0.0.1:0"
    #: Start no rank processes: wait for `msq-agent`s to join.
    remote_agents: bool = False
    #: Seconds to wait for every rank to join and load (0: forever).
    wait_agents_s: float = 0.0
    #: The device of each local rank (`--device` / the rank table), by rank.
    devices: tuple[str, ...] = ("cpu",)
    #: MindSpore CPU threads of the worker, shared by its local ranks (at least 1 each).
    threads: int = 1
    #: A rank silent this long (or a call unanswered this long) loses the group.
    liveness_s: float = 3.0
    #: Options passed on to local rank processes (key file, log level).
    rank_args: tuple[str, ...] = field(default_factory=tuple)
    #: The rank count of `--rank-table`, when given (it must equal the servable's).
    rank_table_ranks: int | None = None


class AgentGroup:
    """`rank_size` ranks of one model, each loading its own file, as one supervised unit."""

    def __init__(self, model_files: Sequence[Path], settings: GroupSettings) -> None:
        self.model_files = list(model_files)
        self.rank_size = len(self.model_files)
        self.settings = settings
        #: Called (from the thread that found it) with the reason when the group is lost.
        self.on_lost: Callable[[str], None] | None = None
        #: Called from the supervisor thread when a lost group is up again (warm it up here).
        self.on_ready: Callable[[], None] | None = None
        self._context: zmq.Context[Any] = zmq.Context()
        self._router = transport.router(self._context, f"tcp://{settings.address}")
        bound = self._router.getsockopt(zmq.LAST_ENDPOINT)
        assert isinstance(bound, bytes)
        #: The endpoint the agents connect to (the port chosen when the address had 0).
        self.endpoint = bound.decode()
        self._lock = threading.Lock()
        self._peers: dict[int, bytes] = {}  # rank -> agent identity
        self._heard: dict[int, float] = {}
        self._processes: list[subprocess.Popen[bytes]] = []
        self._scheduler: subprocess.Popen[bytes] | None = None
        self._up = False
        self._lost_reason = ""
        self._restart = threading.Event()
        self._closing = threading.Event()
        self._generation = 0
        self._call_id = 0
        self._sent = 0.0
        self._supervisor: threading.Thread | None = None

    # ------------------------------------------------------------------------------ start

    def start(self) -> None:
        """Start the group and wait until every rank loaded; ServableLoadError if it cannot."""
        with self._lock:
            self._start()
        if self._supervisor is None:
            self._supervisor = threading.Thread(
                target=self._supervise, name="msq-agent-group", daemon=True
            )
            self._supervisor.start()

    def _start(self) -> None:
        self._generation += 1
        host = self.settings.address.rpartition(":")[0] or "127.0.0.1"
        bind_host = "127.0.0.1" if host in ("localhost", "") else host
        port = processes.free_port(bind_host)
        self._scheduler = processes.start_scheduler(bind_host, port, self.rank_size)
        plan_host = "" if bind_host == "0.0.0.0" else bind_host
        if not self.settings.remote_agents:
            devices = self.settings.devices
            endpoint = self.endpoint.replace("0.0.0.0", "127.0.0.1")
            threads = max(1, self.settings.threads // self.rank_size)  # the worker's share
            options = ["--threads", str(threads), *self.settings.rank_args]
            self._processes = [
                processes.start_rank(endpoint, rank, devices[rank % len(devices)], None, options)
                for rank in range(self.rank_size)
            ]
        where = "local rank processes" if not self.settings.remote_agents else "msq-agent"
        logger.info(
            "waiting for %d ranks (%s) at %s, scheduler on %s:%d",
            self.rank_size, where, self.endpoint, bind_host, port,
        )  # fmt: skip
        try:
            self._await_ranks(plan_host or "", port)
        except ServableLoadError:
            self._teardown()
            raise
        self._up = True
        self._lost_reason = ""
        now = time.monotonic()
        self._heard = dict.fromkeys(self._peers, now)
        logger.info("all %d ranks loaded (group %d)", self.rank_size, self._generation)

    def _await_ranks(self, plan_host: str, port: int) -> None:
        self._peers = {}
        loaded: set[int] = set()
        wait_s = self.settings.wait_agents_s
        until = time.monotonic() + wait_s if wait_s > 0 else float("inf")
        while len(loaded) < self.rank_size:
            if self._closing.is_set():
                raise ServableLoadError("the worker is stopping")
            self._check_processes(starting=True)
            if time.monotonic() > until:
                missing = sorted(set(range(self.rank_size)) - loaded)
                raise ServableLoadError(
                    f"ranks {missing} did not join and load within {wait_s:g} s "
                    f"(--wait-agents-s) at {self.endpoint}"
                )
            if time.monotonic() - self._sent >= HEARTBEAT_S:  # loaded ranks wait for the rest
                for peer in self._peers.values():
                    self._send(peer, Heartbeat())
                self._sent = time.monotonic()
            for peer, message in self._receive(0.25):
                match message:
                    case AgentQuery():
                        self._send(peer, AgentRanks(self.rank_size))
                    case AgentJoin():
                        self._join(peer, message, plan_host, port)
                    case AgentLoaded(rank, error) if self._peers.get(rank) == peer:
                        if error:
                            raise ServableLoadError(f"rank {rank} failed to start: {error}")
                        loaded.add(rank)
                    case _:
                        pass

    def _join(self, peer: bytes, join: AgentJoin, plan_host: str, port: int) -> None:
        rank = join.rank
        if not 0 <= rank < self.rank_size:
            self._refuse(peer, f"rank {rank} is out of range: the servable has ranks "
                               f"0..{self.rank_size - 1}")  # fmt: skip
        elif rank in self._peers:
            self._refuse(peer, f"rank {rank} has already joined")
        else:
            self._peers[rank] = peer
            model_file = join.model_file or str(self.model_files[rank])
            plan = AgentPlan(self.rank_size, plan_host, port, model_file, self._generation)
            self._send(peer, plan)
            logger.info("rank %d joined (pid %d), loads %s", rank, join.pid, model_file)

    def _refuse(self, peer: bytes, reason: str) -> None:
        logger.warning("refused an agent: %s", reason)
        self._send(peer, AgentRefused(reason))

    # ------------------------------------------------------------------------------ calls

    def call(
        self, arrays: Sequence[np.ndarray], bound_s: float | None = None
    ) -> tuple[np.ndarray, ...]:
        """Run the model once on every rank; the last rank's outputs. `bound_s` (default
        `liveness_s`) is how long each rank may take. GroupLostError if the group is down or is
        lost during the call; RuntimeError if a rank's model failed."""
        with self._lock:
            if not self._up:
                raise GroupLostError(f"the group of ranks is down: {self._lost_reason}")
            self._call_id += 1
            call_id = self._call_id
            frames = transport.frames_of(
                AgentCall(call_id, {str(k): to_wire(a) for k, a in enumerate(arrays)})
            )
            for rank, peer in self._peers.items():
                try:
                    self._router.send_multipart([peer, *frames], copy=False)
                except zmq.ZMQError as exc:  # EHOSTUNREACH: gone; EAGAIN: not reading
                    self._lose(f"rank {rank} cannot be reached: {exc}")
            self._sent = time.monotonic()
            return self._collect(call_id, bound_s or self.settings.liveness_s)

    def _collect(self, call_id: int, bound_s: float) -> tuple[np.ndarray, ...]:
        started = time.monotonic()
        pending = set(self._peers)
        outputs: dict[str, Any] = {}
        errors: list[str] = []
        while pending:
            self._check_processes()
            if time.monotonic() - started > bound_s:
                self._lose(f"ranks {sorted(pending)} did not answer a call within {bound_s:g} s")
            for rank, message in self._from_ranks(0.1):
                if isinstance(message, AgentOutputs) and message.call_id == call_id:
                    pending.discard(rank)
                    if message.error:
                        errors.append(f"rank {rank}: {message.error}")
                    if rank == self.rank_size - 1:
                        outputs = dict(message.outputs)
        if errors:
            raise RuntimeError("; ".join(errors))
        return tuple(np.asarray(from_wire(outputs[str(k)])) for k in range(len(outputs)))

    # ------------------------------------------------------------------------------ supervision

    def _supervise(self) -> None:
        while not self._closing.is_set():
            if self._restart.wait(0.25):
                self._restart_group()
                continue
            if not self._lock.acquire(timeout=0.25):
                continue  # a call is running: it watches the ranks itself
            try:
                if self._up:
                    self._watch()
            except GroupLostError:
                pass
            finally:
                self._lock.release()

    def _watch(self) -> None:
        for _rank, _message in self._from_ranks(0.0):
            pass
        self._check_processes()
        now = time.monotonic()
        for rank, heard in self._heard.items():
            if now - heard > self.settings.liveness_s:
                self._lose(f"rank {rank} was silent for {now - heard:.1f} s")
        if now - self._sent >= HEARTBEAT_S:
            for peer in self._peers.values():
                self._send(peer, Heartbeat())
            self._sent = now

    def _restart_group(self) -> None:
        with self._lock:
            self._teardown()
            try:
                self._start()
            except ServableLoadError as exc:
                logger.error("the group did not start again: %s; trying again", exc)
                self._closing.wait(RESTART_DELAY_S)
                return
            self._restart.clear()
        logger.warning("the group of %d ranks is up again", self.rank_size)
        if self.on_ready is not None:
            try:
                self.on_ready()
            except Exception as exc:  # a failed warm-up: the group goes down again
                logger.exception("the group failed after starting again")
                with self._lock:
                    self._mark_lost(f"warm-up after restart failed: {exc}")

    def _teardown(self) -> None:
        for peer in self._peers.values():
            self._send(peer, AgentRefused(RESTARTS))
        self._peers = {}
        self._heard = {}
        group = [*self._processes, *([self._scheduler] if self._scheduler else [])]
        processes.stop(group)
        self._processes = []
        self._scheduler = None
        # Drop what the old ranks sent.
        for _ in self._receive(0.0):
            pass

    def _check_processes(self, *, starting: bool = False) -> None:
        for rank, process in enumerate(self._processes):
            if (code := process.poll()) is not None:
                reason = f"rank {rank} (pid {process.pid}) exited with code {code}"
                if starting:
                    raise ServableLoadError(reason)
                self._lose(reason)
        if self._scheduler is not None and (code := self._scheduler.poll()) is not None:
            reason = f"MindSpore's scheduler (pid {self._scheduler.pid}) exited with code {code}"
            if starting:
                raise ServableLoadError(reason)
            self._lose(reason)

    def _mark_lost(self, reason: str) -> None:
        if self._up:
            self._up = False
            self._lost_reason = reason
            logger.error("lost the group of ranks: %s; starting it again", reason)
            if self.on_lost is not None:
                self.on_lost(reason)
            self._restart.set()

    def _lose(self, reason: str) -> None:
        self._mark_lost(reason)
        raise GroupLostError(f"the group of ranks was lost: {reason}")

    # ------------------------------------------------------------------------------ sockets

    def _receive(self, timeout_s: float) -> list[tuple[bytes, Message]]:
        """The messages waiting (after up to `timeout_s` for the first), with their sender."""
        received: list[tuple[bytes, Message]] = []
        if not self._router.poll(round(timeout_s * 1000)):
            return received
        while True:
            try:
                peer, *frames = self._router.recv_multipart(copy=False, flags=zmq.NOBLOCK)
            except zmq.Again:
                return received
            try:
                received.append((bytes(peer.buffer), transport.message_of(frames)))
            except WireError as exc:
                logger.warning("dropped a malformed message from an agent: %s", exc)

    def _from_ranks(self, timeout_s: float) -> list[tuple[int, Message]]:
        """The messages from joined ranks (heard now); agents that are not ranks are refused."""
        ranks = {peer: rank for rank, peer in self._peers.items()}
        found = []
        now = time.monotonic()
        for peer, message in self._receive(timeout_s):
            rank = ranks.get(peer)
            if rank is None:
                if isinstance(message, AgentQuery):
                    self._send(peer, AgentRanks(self.rank_size))
                elif isinstance(message, AgentJoin):
                    self._refuse(peer, "the group is running: every rank has joined")
                continue
            self._heard[rank] = now
            found.append((rank, message))
        return found

    def _send(self, peer: bytes, message: Message) -> None:
        try:
            self._router.send_multipart([peer, *transport.frames_of(message)], copy=False)
        except zmq.ZMQError as exc:  # EHOSTUNREACH: the agent is gone
            logger.info("an agent is gone: %s", exc)

    def close(self) -> None:
        """Stop supervising, kill the local ranks and the scheduler, close the endpoint."""
        self._closing.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=5.0)
        with self._lock:
            self._up = False
            self._teardown()
            self._router.close(linger=0)
        self._context.term()
