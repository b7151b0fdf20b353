"""`msq-bench`: measure msq against its floors and a peer, on this machine.

    msq-bench                                   # every scenario, system and path; the targets
    msq-bench --scenarios tiny --systems msq,bare-grpc --paths ms-grpc --concurrency 1,64
    msq-bench --plan targets                    # only the runs the targets need
    msq-bench chaos ... / msq-bench soak ...    # faults and memory: msq.benchmarks.chaos_cli

Writes `results.json` and one PNG per scenario into --out, and prints tables.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

from msq.benchmarks import report
from msq.benchmarks.clients import PATHS
from msq.benchmarks.hops import evaluate_hops
from msq.benchmarks.runner import Options, Runner, RunSpec
from msq.benchmarks.scenarios import SCENARIOS
from msq.benchmarks.systems import SYSTEM_PATHS
from msq.benchmarks.targets import evaluate, target_plan

#: Paths a scenario skips: MindSpore Serving's JSON turns 4 MiB into ~20 MB of nested lists,
#: which measures the JSON codec, not serving; and `large` has no model to call in-process.
SKIPPED_PATHS = {"large": ("ms-rest", "inproc")}
#: Systems the sweep leaves out unless named (the targets still run what they need).
NOT_SWEPT = ("msq-nobatch",)
#: Instances per call of the direct (in-process) floor besides --batch.
DIRECT_BATCH = 32
DEFAULT_OUT = Path("benchmarks/results")
#: Commands of their own (`msq.benchmarks.chaos_cli`): `msq-bench chaos ...`, `msq-bench soak ...`.
SUBCOMMANDS = ("chaos", "soak")


def _names(text: str, allowed: tuple[str, ...] | list[str]) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {unknown}; choose from {', '.join(allowed)}")
    return names


def _integers(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 1,8,64, not {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("expected positive integers")
    return values


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="msq-bench",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    scenarios, systems = list(SCENARIOS), list(SYSTEM_PATHS)
    parser.add_argument(
        "--scenarios",
        type=lambda text: _names(text, scenarios),
        default=scenarios,
        help=f"comma-separated, of {','.join(scenarios)}",
    )
    parser.add_argument(
        "--systems",
        type=lambda text: _names(text, systems),
        default=[name for name in systems if name not in NOT_SWEPT],
        help=f"comma-separated, of {','.join(systems)}",
    )
    parser.add_argument(
        "--paths",
        type=lambda text: _names(text, PATHS),
        default=list(PATHS),
        help=f"msq's paths, of {','.join(PATHS)}",
    )
    parser.add_argument("--concurrency", type=_integers, default=[1, 8, 64], help="in flight")
    parser.add_argument("--batch", type=int, default=1, help="instances per request")
    parser.add_argument(
        "--rate", type=float, default=None, help="open loop: Poisson arrivals per second"
    )
    parser.add_argument(
        "--plan",
        choices=("sweep", "targets", "both"),
        default="both",
        help="the sweep given by the options above, the targets' runs, or both",
    )
    parser.add_argument("--duration", type=float, default=3.0, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per run")
    parser.add_argument("--count", type=int, default=None, help="stop a run after N requests")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument(
        "--markdown",
        type=Path,
        default=None,
        help="print the tables of an earlier results.json as Markdown, and run nothing",
    )
    parser.add_argument("--no-progress", action="store_true", help="no live progress bars")
    return parser.parse_args(argv)


def sweep_plan(args: argparse.Namespace) -> list[RunSpec]:
    """Every selected scenario x system x path x concurrency (direct: batch 1 and batched)."""
    plan = []
    for scenario in args.scenarios:
        skipped = SKIPPED_PATHS.get(scenario, ())
        for system in args.systems:
            if system == "direct":
                if "inproc" not in skipped:
                    for batch in sorted({args.batch, DIRECT_BATCH}):
                        plan.append(RunSpec(scenario, "direct", "inproc", 1, batch))
                continue
            paths = [p for p in SYSTEM_PATHS[system] if p in args.paths and p not in skipped]
            for path in paths:
                for concurrency in args.concurrency:
                    plan.append(RunSpec(scenario, system, path, concurrency, args.batch, args.rate))
    return plan


def build_plan(args: argparse.Namespace) -> list[RunSpec]:
    """The runs to do, grouped so each system starts once per scenario."""
    specs = sweep_plan(args) if args.plan != "targets" else []
    if args.plan != "sweep":
        specs += [spec for spec in target_plan() if spec.scenario in args.scenarios]
    unique = list(dict.fromkeys(specs))
    scenario_order, system_order = list(SCENARIOS), list(SYSTEM_PATHS)
    return sorted(
        unique,
        key=lambda spec: (scenario_order.index(spec.scenario), system_order.index(spec.system)),
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; the exit status is 1 when a system failed to start."""
    given = sys.argv[1:] if argv is None else argv
    if given and given[0] in SUBCOMMANDS:
        from msq.benchmarks import chaos_cli  # noqa: PLC0415 - it imports this module

        return chaos_cli.main(given)
    args = parse_args(argv)
    if args.markdown is not None:
        print(report.markdown(json.loads(args.markdown.read_text())), end="")
        return 0
    # On SIGTERM, unwind like on Ctrl-C so that every server started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    plan = build_plan(args)
    options = Options(
        duration_s=args.duration,
        warmup_s=args.warmup,
        count=args.count,
        log_dir=args.out / "logs",
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    started, load_at_start = time.time(), os.getloadavg()
    print(f"msq-bench: {len(plan)} runs into {args.out}", file=sys.stderr)
    runner = Runner(options)
    asyncio.run(runner.run(plan))
    targets = evaluate(runner.runs, runner.memory)
    hops = evaluate_hops(runner.runs)
    document = {
        "meta": {
            "command": ["msq-bench", *(sys.argv[1:] if argv is None else argv)],
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
            "elapsed_s": round(time.time() - started, 1),
            "machine": report.machine(),
            # 1/5/15-minute load averages before the first server started and after the
            # last run: how busy the machine was
            "load_average": {"start": load_at_start, "end": os.getloadavg()},
            "duration_s": args.duration,
            "warmup_s": args.warmup,
        },
        "runs": runner.runs,
        "memory": runner.memory,
        "skipped": runner.skipped,
        "failures": runner.failures,
        "targets": targets,
        "hops": hops,
    }
    report.write_json(args.out / "results.json", document)
    print(report.runs_table(runner.runs))
    if runner.memory:
        print("\n" + report.memory_table(runner.memory))
    if args.plan != "sweep":
        print("\n" + report.targets_table(targets))
    if hops:
        print("\nT7, cost per hop (CPU per request and per instance):\n" + report.hops_table(hops))
    for message in runner.skipped:
        print(f"skipped: {message}")
    for message in runner.failures:
        print(f"FAILED: {message}")
    if not args.no_plots:
        for scenario in args.scenarios:
            path = report.plot_scenario(scenario, runner.runs, args.out)
            if path is not None:
                print(f"plot: {path}")
    print(f"results: {args.out / 'results.json'}")
    return 1 if runner.failures else 0
