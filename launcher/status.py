"""`msq status`: the brokers of a running deployment, their workers and routes, in a terminal.

Each broker is asked with a `StatusQuery` on its frontend; `render` (tables) and `as_json`
(plain data) are pure functions of the answers, so they are tested without a terminal or a
socket.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import sys
import time
from dataclasses import dataclass
from typing import Any

import zmq
from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from msq.proto import transport
from msq.proto.curve import CurveClient
from msq.proto.messages import RouteWindow, Status, StatusQuery
from msq.proto.wire import WireError
from msq.security import add_curve_client_options, curve_client_from

#: Seconds to wait for the brokers' answers, and between refreshes of `--watch`.
DEFAULT_TIMEOUT_S = 2.0
DEFAULT_WATCH_S = 2.0


@dataclass(frozen=True, slots=True)
class BrokerView:
    """One broker's answer, or why there is none."""

    address: str
    status: Status | None
    error: str | None = None


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `msq status` to the launcher's subcommands."""
    parser = commands.add_parser(
        "status",
        help="show the brokers, workers and routes of a running deployment",
        description="Ask brokers for their workers and routes (queues, rates, latency over "
        "the last minute) and show them once, refreshing, or as JSON.",
    )
    parser.add_argument(
        "--broker",
        action="append",
        metavar="ADDR",
        help="broker frontend to ask (repeatable or comma-separated, as gateways take it; "
        f"default {transport.DEFAULT_FRONTEND})",
    )
    parser.add_argument(
        "--watch",
        nargs="?",
        type=_positive,
        const=DEFAULT_WATCH_S,
        metavar="SECONDS",
        help=f"refresh every SECONDS (default {DEFAULT_WATCH_S:g}) until Ctrl-C",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print JSON (with --watch: one line per refresh)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help="how long to wait for the brokers' answers (default %(default)s)",
    )
    add_curve_client_options(parser)


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


class StatusClient:
    """A DEALER to each broker's frontend; `query` asks them all at once."""

    def __init__(
        self, addresses: list[str], timeout_s: float, curve: CurveClient | None = None
    ) -> None:
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._sockets = {
            address: transport.dealer(self._context, address, curve=curve) for address in addresses
        }
        self._timeout_s = timeout_s
        self._ids = itertools.count(1)

    def query(self) -> list[BrokerView]:
        """Every broker's answer, in the order given; late answers to earlier queries are
        dropped."""
        request_id = next(self._ids)
        poller = zmq.Poller()
        for sock in self._sockets.values():
            # Never blocks: a broker with no connection (down, or refusing our CURVE key)
            # simply does not answer.
            try:
                sock.send_multipart(transport.frames_of(StatusQuery(request_id)), zmq.NOBLOCK)
            except zmq.Again:
                continue
            poller.register(sock, zmq.POLLIN)
        answers: dict[str, BrokerView] = {}
        deadline = time.monotonic() + self._timeout_s
        while len(answers) < len(self._sockets) and (left := deadline - time.monotonic()) > 0:
            ready = dict(poller.poll(math.ceil(left * 1000.0)))
            for address, sock in self._sockets.items():
                if sock in ready:
                    answer = _receive(address, sock, request_id)
                    if answer is not None:
                        answers[address] = answer
        missing = f"no answer within {self._timeout_s:g} s"
        return [
            answers.get(address, BrokerView(address, None, missing)) for address in self._sockets
        ]

    def close(self) -> None:
        for sock in self._sockets.values():
            sock.close(linger=0)
        self._context.term()


def _receive(address: str, sock: zmq.Socket[bytes], request_id: int) -> BrokerView | None:
    """The broker's answer to `request_id` (None: a stale answer, read and dropped)."""
    try:
        message = transport.message_of(sock.recv_multipart(copy=False))
    except WireError as exc:
        return BrokerView(address, None, f"unreadable answer: {exc}")
    if not isinstance(message, Status):
        return BrokerView(address, None, f"unexpected answer {type(message).__name__}")
    return BrokerView(address, message) if message.request_id == request_id else None


# ---------------------------------------------------------------------------------- plain data


def rates(window: RouteWindow) -> tuple[float, float]:
    """Requests and instances per second over the window."""
    if window.seconds <= 0:
        return 0.0, 0.0
    return window.requests / window.seconds, window.instances / window.seconds


def as_json(views: list[BrokerView]) -> dict[str, list[dict[str, Any]]]:
    """The brokers, workers and routes as plain data; each worker and route names its broker."""
    brokers: list[dict[str, Any]] = []
    workers: list[dict[str, Any]] = []
    routes: list[dict[str, Any]] = []
    for view in views:
        status = view.status
        broker = None if status is None or status.broker is None else status.broker
        brokers.append(
            {
                "address": view.address,
                "answered": status is not None,
                "error": view.error,
                **(dataclasses.asdict(broker) if broker is not None else {}),
            }
        )
        if status is None:
            continue
        for worker in sorted(status.workers, key=lambda w: (w.servable, w.version, w.pid)):
            busy = worker.capacity - worker.free
            workers.append({"broker": view.address, **dataclasses.asdict(worker), "busy": busy})
        for route in status.routes:
            row = {"broker": view.address, **dataclasses.asdict(route)}
            row["window"]["requests_per_s"], row["window"]["instances_per_s"] = rates(route.window)
            routes.append(row)
    return {"brokers": brokers, "workers": workers, "routes": routes}


# ---------------------------------------------------------------------------------- tables


def render(views: list[BrokerView], title: str = "msq status") -> RenderableType:
    """The brokers, workers and routes as three tables (a broker column when several)."""
    data = as_json(views)
    several = len(views) > 1
    brokers = _table(title, False, ["broker", "state", "uptime", "incarnation"], ["pid"])
    for view, row in zip(views, data["brokers"], strict=True):
        brokers.add_row(
            view.address,
            Text("up", "green") if view.status else Text(view.error or "down", "red"),
            _duration(row.get("uptime_s")),
            row.get("incarnation", "-"),
            str(row.get("pid", "-")),
        )
    workers = _table(
        "workers", several, ["servable", "ver", "device", "pid"], ["busy", "free", "jobs", "heard"]
    )
    for worker in data["workers"]:
        workers.add_row(
            *([worker["broker"]] if several else []),
            worker["servable"],
            str(worker["version"]),
            worker["device"],
            str(worker["pid"]),
            Text(str(worker["busy"]), "yellow" if worker["free"] == 0 else ""),
            str(worker["free"]),
            str(worker["jobs"]),
            f"{worker['silent_s']:.1f}s ago",
        )
    routes = _table(
        "routes (last minute)",
        several,
        ["servable", "ver", "method"],
        ["queued", "jobs", "workers", "req/s", "inst/s", "p50 ms", "p99 ms"],
    )
    for route in data["routes"]:
        window = route["window"]
        routes.add_row(
            *([route["broker"]] if several else []),
            route["servable"],
            str(route["version"]),
            route["method"],
            str(route["queued"]),
            str(route["in_flight"]),
            str(route["workers"]),
            f"{window['requests_per_s']:.1f}",
            f"{window['instances_per_s']:.1f}",
            _milliseconds(window["p50_ms"]),
            _milliseconds(window["p99_ms"]),
        )
    return Group(brokers, workers, routes)


def _table(title: str, several: bool, left: list[str], right: list[str]) -> Table:
    """A table with text columns `left` (after a broker column when `several`) and number
    columns `right`."""
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for column in (["broker"] if several else []) + left:
        table.add_column(column)
    for column in right:
        table.add_column(column, justify="right")
    return table


def _duration(seconds: object) -> str:
    if not isinstance(seconds, float | int):
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _milliseconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


# ---------------------------------------------------------------------------------- command


def run(args: argparse.Namespace) -> int:
    """`msq status`: 0 when every broker answered (always 0 after `--watch` ends), 2 when the
    broker list or the CURVE key files cannot be used."""
    try:
        brokers = transport.endpoints(args.broker or transport.DEFAULT_FRONTEND)
        curve = curve_client_from(args)
    except ValueError as exc:  # CurveError is a ValueError
        print(f"msq status: {exc}", file=sys.stderr)
        return 2
    client = StatusClient(brokers, args.timeout, curve)
    console = Console()
    try:
        if args.watch is None:
            views = client.query()
            if args.json:
                print(json.dumps(as_json(views), indent=2))
            else:
                console.print(render(views))
            return 0 if all(view.status is not None for view in views) else 1
        _watch(client, args.watch, console, as_lines=args.json)
        return 0
    finally:
        client.close()


def _watch(client: StatusClient, every_s: float, console: Console, *, as_lines: bool) -> None:
    """Query and show every `every_s` seconds until Ctrl-C."""

    def title() -> str:
        return f"msq status at {time.strftime('%H:%M:%S')}, every {every_s:g} s (Ctrl-C stops)"

    try:
        if as_lines:
            while True:
                print(json.dumps(as_json(client.query())), flush=True)
                time.sleep(every_s)
        else:
            with Live(render(client.query(), title()), console=console, auto_refresh=False) as live:
                while True:
                    time.sleep(every_s)
                    live.update(render(client.query(), title()), refresh=True)
    except KeyboardInterrupt:
        return
