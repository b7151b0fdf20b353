"""`msq-bench chaos` and `msq-bench soak`: msq under faults, and msq's memory under steady load.

    msq-bench chaos                      # msq serve (2 workers), 5 faults 20 s apart, tables
    msq-bench chaos --faults worker-kill,worker-stop --count 2 --interval 10 --seed 7
    msq-bench soak --duration 600        # 10 minutes of steady load; RSS drift per process
    msq-bench soak --attach PID --grpc 127.0.0.1:5500 --rest http://127.0.0.1:1500

Each starts `msq serve examples/servables --servable add --workers N` on free loopback ports
(or attaches to a running `msq serve`, the launcher's PID), prints rich tables and writes
JSON. The exit status is 1 when an answer was wrong (chaos) or any request was not ok (soak).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from pathlib import Path

from rich.console import Console

from msq.benchmarks import report
from msq.benchmarks.chaos import LoadSettings, run_chaos
from msq.benchmarks.cli import _names
from msq.benchmarks.deployment import Deployment, attach, start_serve
from msq.benchmarks.faults import FaultKind, make_schedule
from msq.benchmarks.probes import PATHS
from msq.benchmarks.soak import drift_table, run_soak
from msq.benchmarks.tally import table

DEFAULT_OUT = Path("benchmarks/results")


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, not {text!r}")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    deployment = parser.add_argument_group("deployment")
    deployment.add_argument("--workers", type=int, default=2, help="workers msq serve starts")
    deployment.add_argument(
        "--attach", type=int, metavar="PID", help="drive the running `msq serve` with this pid"
    )
    deployment.add_argument("--grpc", metavar="HOST:PORT", help="its gRPC gateway (--attach)")
    deployment.add_argument("--rest", metavar="URL", help="its REST gateway (--attach)")
    load = parser.add_argument_group("load")
    load.add_argument(
        "--paths",
        type=lambda text: tuple(_names(text, PATHS)),
        default=PATHS,
        help=f"comma-separated, of {','.join(PATHS)}",
    )
    load.add_argument("--concurrency", type=int, default=4, help="requests in flight per path")
    load.add_argument("--deadline", type=_positive, default=5.0, help="each request's, seconds")
    load.add_argument("--seed", type=int, default=0, help="seeds the requests and the faults")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON and logs folder")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="msq-bench",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    kinds = tuple(kind.value for kind in FaultKind)
    chaos = commands.add_parser("chaos", help="mixed load while faults hit msq's processes")
    _common(chaos)
    chaos.add_argument(
        "--faults",
        type=lambda text: _names(text, kinds),
        default=list(kinds),
        help=f"fault kinds, comma-separated, of {','.join(kinds)}",
    )
    chaos.add_argument("--count", type=int, default=len(kinds), help="faults in the run")
    chaos.add_argument("--first-at", type=float, default=10.0, help="first fault, s into the run")
    chaos.add_argument("--interval", type=_positive, default=20.0, help="s between faults")
    chaos.add_argument("--stop-seconds", type=_positive, default=8.0, help="SIGSTOP to SIGCONT")
    chaos.add_argument(
        "--duration",
        type=_positive,
        help="run length, s (default: until an interval after the last fault)",
    )
    soak = commands.add_parser("soak", help="steady load; RSS of every msq process")
    _common(soak)
    soak.add_argument("--duration", type=_positive, default=600.0, help="seconds of load")
    soak.add_argument("--sample-every", type=_positive, default=10.0, help="RSS sample period, s")
    args = parser.parse_args(argv)
    if (args.attach is None) != (args.grpc is None) or (args.grpc is None) != (args.rest is None):
        parser.error("--attach, --grpc and --rest go together")
    if not args.paths or args.concurrency < 1 or args.workers < 1:
        parser.error("--paths, --concurrency and --workers need at least one")
    if args.command == "chaos":
        if not args.faults or args.count < 0 or args.first_at < 0:
            parser.error("--faults needs a kind, --count and --first-at cannot be negative")
        if args.count > 1 and args.stop_seconds >= args.interval:
            parser.error("--stop-seconds must be shorter than --interval")
    return args


def _deployment(args: argparse.Namespace) -> Deployment:
    if args.attach is not None:
        return attach(args.attach, args.grpc, args.rest)
    return start_serve(args.out / "logs" / args.command, workers=args.workers)


def _settings(args: argparse.Namespace) -> LoadSettings:
    return LoadSettings(args.paths, args.concurrency, args.deadline, args.seed)


def run(args: argparse.Namespace, console: Console) -> tuple[dict[str, object], bool]:
    """Run the command; its JSON document and whether it passed."""
    deployment = _deployment(args)
    try:
        if args.command == "chaos":
            schedule = make_schedule(
                [FaultKind(kind) for kind in args.faults],
                args.count,
                args.first_at,
                args.interval,
                args.seed,
            )
            duration = args.duration or args.first_at + max(args.count, 1) * args.interval
            chaos = asyncio.run(
                run_chaos(
                    deployment,
                    _settings(args),
                    schedule,
                    stop_s=args.stop_seconds,
                    duration_s=duration,
                )
            )
            console.print(table("msq-bench chaos", chaos.windows, chaos.totals))
            return chaos.as_dict(), chaos.totals.wrong == 0
        soak = asyncio.run(run_soak(deployment, _settings(args), args.duration, args.sample_every))
        console.print(drift_table(soak.drifts))
        console.print(table("msq-bench soak: requests", [], soak.counts))
        passed = soak.counts.ok == soak.counts.sent and not any(d.restarted for d in soak.drifts)
        return soak.as_dict(), passed
    finally:
        deployment.stop()


def main(argv: list[str]) -> int:
    """`msq-bench chaos|soak ...`; 0 when the run passed."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: stop what was started
    started = time.time()
    document, passed = run(args, Console(width=None if sys.stdout.isatty() else 160))
    path = args.out / f"{args.command}.json"
    meta = {
        "command": ["msq-bench", *argv],
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "machine": report.machine(),
        "load": _settings(args).as_dict(),
        "passed": passed,
    }
    report.write_json(path, {"meta": meta, **document})
    print(f"results: {path}")
    return 0 if passed else 1
