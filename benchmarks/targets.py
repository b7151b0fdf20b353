"""msq's performance targets (issues 6 and 13), the runs that measure them, and their evaluation.

Each target is a ratio of two runs of the same benchmark invocation (so both see the same
machine load), or a memory bound on the processes the harness started.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from msq.benchmarks.runner import RunSpec


class RunKey(NamedTuple):
    """Identifies a closed-loop run in the results."""

    scenario: str
    system: str
    path: str
    concurrency: int
    batch: int = 1

    def spec(self) -> RunSpec:
        return RunSpec(self.scenario, self.system, self.path, self.concurrency, self.batch)


@dataclass(frozen=True, slots=True)
class RatioTarget:
    """`metric` of `numerator` over that of `denominator` must be >= goal (<= when `at_most`);
    a ratio without a goal (None) is only reported."""

    id: str
    description: str
    numerator: RunKey
    denominator: RunKey
    metric: str
    goal: float | None
    at_most: bool = False


TINY_MSQ_64 = RunKey("tiny", "msq", "ms-grpc", 64)
TINY_BARE_64 = RunKey("tiny", "bare-grpc", "ms-grpc", 64)
MLP_MSQ_64 = RunKey("mlp", "msq", "ms-grpc", 64)
MLP_REST_64 = RunKey("mlp", "msq", "ms-rest", 64)
MLP_LINK_64 = RunKey("mlp", "msq", "link", 64)


def _versus_peer(peer: str, suffix: str, name: str) -> tuple[RatioTarget, RatioTarget]:
    """T6: msq's REST gateway against a peer system serving `ms-rest`, on `mlp`."""
    peer_64 = RunKey("mlp", peer, "ms-rest", 64)
    return (
        RatioTarget(
            f"T6a{suffix}", f"mlp, HTTP, 64 in flight: throughput vs {name}",
            MLP_REST_64, peer_64, "requests_per_s", 3.0,
        ),
        RatioTarget(
            f"T6b{suffix}", f"mlp, HTTP, 64 in flight: p99 vs {name}",
            MLP_REST_64, peer_64, "p99", 0.5, at_most=True,
        ),
    )  # fmt: skip


RATIO_TARGETS = (
    RatioTarget(
        "T1a", "tiny, gRPC, 64 in flight: throughput vs bare gRPC server",
        TINY_MSQ_64, TINY_BARE_64, "requests_per_s", 1.0,
    ),
    RatioTarget(
        "T1b", "tiny, gRPC, 1 in flight: p50 vs bare gRPC server",
        RunKey("tiny", "msq", "ms-grpc", 1), RunKey("tiny", "bare-grpc", "ms-grpc", 1),
        "p50", 1.3, at_most=True,
    ),
    RatioTarget(
        "T2a", "mlp, 1-instance requests, gRPC, 64 in flight: vs bare gRPC tiny throughput",
        MLP_MSQ_64, TINY_BARE_64, "requests_per_s", 0.8,
    ),
    RatioTarget(
        "T2b", "mlp, 1-instance requests, link, 64 in flight: vs msq with batching off",
        MLP_LINK_64, RunKey("mlp", "msq-nobatch", "link", 64), "requests_per_s", 5.0,
    ),
    RatioTarget(
        "T2b-grpc", "the same through the gRPC gateway (reported: the gateway is the ceiling)",
        MLP_MSQ_64, RunKey("mlp", "msq-nobatch", "ms-grpc", 64), "requests_per_s", None,
    ),
    RatioTarget(
        "T3", "mlp, 32-instance requests, gRPC, 8 in flight: instances/s vs direct batched",
        RunKey("mlp", "msq", "ms-grpc", 8, 32), RunKey("mlp", "direct", "inproc", 1, 32),
        "instances_per_s", 0.8,
    ),
    RatioTarget(
        "T4", "large (4 MiB), gRPC, 4 in flight: MB/s vs bare gRPC echo",
        RunKey("large", "msq", "ms-grpc", 4), RunKey("large", "bare-grpc", "ms-grpc", 4),
        "mb_per_s", 0.6,
    ),
    RatioTarget(
        "T5", "tiny, REST (gunicorn, 2 workers), 64 connections: vs bare Falcon app",
        RunKey("tiny", "msq", "ms-rest", 64), RunKey("tiny", "bare-rest", "ms-rest", 64),
        "requests_per_s", 0.8,
    ),
    *_versus_peer("ray", "", "Ray Serve (@serve.batch)"),
    *_versus_peer("litserve", "-litserve", "LitServe (max_batch_size=64)"),
)  # fmt: skip

#: T7 (cost per hop, `msq.benchmarks.hops`): a few representative runs of msq.
HOP_RUNS = (
    RunKey("tiny", "msq", "ms-grpc", 1),
    MLP_MSQ_64,
    RunKey("mlp", "msq", "ms-grpc", 8, 32),
    MLP_LINK_64,
)

#: RSS bounds in MB of msq's processes serving `mlp`, by process label prefix.
MEMORY_BOUNDS_MB = {"worker": 600.0, "broker": 80.0, "grpc-gateway": 150.0, "rest-gateway": 150.0}
MEMORY_SCENARIO = "mlp"


def target_plan() -> list[RunSpec]:
    """Every run the targets need (the memory bounds are read from the `mlp` msq runs, T7
    from `HOP_RUNS`)."""
    specs: dict[RunSpec, None] = {}
    for target in RATIO_TARGETS:
        specs[target.numerator.spec()] = None
        specs[target.denominator.spec()] = None
    specs.update((key.spec(), None) for key in HOP_RUNS)
    return list(specs)


def _metric(run: dict[str, Any], metric: str) -> float:
    if metric in ("p50", "p90", "p99", "max"):
        return float(run["latency_ms"][metric])
    return float(run[metric])


def find_run(runs: list[dict[str, Any]], key: RunKey) -> dict[str, Any] | None:
    """The closed-loop run `key` identifies, if it was measured."""
    for run in runs:
        if (
            run["rate"] is None
            and RunKey(
                run["scenario"], run["system"], run["path"], run["concurrency"], run["batch"]
            )
            == key
        ):
            return run
    return None


def _ratio_row(target: RatioTarget, runs: list[dict[str, Any]]) -> dict[str, Any]:
    goal = "-" if target.goal is None else f"{'<=' if target.at_most else '>='} {target.goal:g}"
    row: dict[str, Any] = {
        "id": target.id,
        "description": target.description,
        "goal": goal,
        "ratio": None,
        "met": None,
    }
    numerator, denominator = find_run(runs, target.numerator), find_run(runs, target.denominator)
    if numerator is None or denominator is None:
        row["detail"] = "not measured in this run"
        return row
    top, bottom = _metric(numerator, target.metric), _metric(denominator, target.metric)
    row["detail"] = (
        f"{target.metric}: {target.numerator.system} {top:.4g} / "
        f"{target.denominator.system} {bottom:.4g}"
    )
    if bottom <= 0:
        return row
    ratio = top / bottom
    row["ratio"] = round(ratio, 3)
    if target.goal is not None:
        row["met"] = ratio <= target.goal if target.at_most else ratio >= target.goal
    return row


def _memory_rows(memory: dict[str, dict[str, dict[str, float]]]) -> list[dict[str, Any]]:
    sizes = memory.get(MEMORY_SCENARIO, {}).get("msq", {})
    rows = []
    for prefix, bound in MEMORY_BOUNDS_MB.items():
        measured = {label: rss for label, rss in sizes.items() if label.split("/")[0] == prefix}
        worst = max(measured.values(), default=None)
        rows.append(
            {
                "id": f"M-{prefix}",
                "description": f"RSS of each {prefix} process serving {MEMORY_SCENARIO}",
                "goal": f"<= {bound:g} MB",
                "ratio": None if worst is None else round(worst / bound, 3),
                "met": None if worst is None else worst <= bound,
                "detail": ", ".join(f"{k} {v:.0f} MB" for k, v in measured.items())
                or "not measured in this run",
            }
        )
    return rows


def evaluate(
    runs: list[dict[str, Any]], memory: dict[str, dict[str, dict[str, float]]]
) -> list[dict[str, Any]]:
    """One row per target: the measured ratio, the goal, whether it is met (None: unmeasured)."""
    return [_ratio_row(target, runs) for target in RATIO_TARGETS] + _memory_rows(memory)
