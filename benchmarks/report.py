"""Results as a terminal table, a JSON file and PNG plots."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from msq.benchmarks.hops import HOPS

RUN_COLUMNS = (
    ("scenario", "{}"),
    ("system", "{}"),
    ("path", "{}"),
    ("concurrency", "{}"),
    ("batch", "{}"),
    ("requests_per_s", "{:.1f}"),
    ("instances_per_s", "{:.1f}"),
    ("mb_per_s", "{:.1f}"),
)
LATENCY_COLUMNS = ("p50", "p90", "p99", "max")


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
    }


def _row(run: dict[str, Any]) -> list[str]:
    cells = [fmt.format(run[key]) for key, fmt in RUN_COLUMNS]
    cells += [f"{run['latency_ms'][key]:.2f}" for key in LATENCY_COLUMNS]
    batching = run.get("batching") or {}
    cells.append(f"{batching['mean_job_size']:.1f}" if batching.get("jobs") else "-")
    cells.append(",".join(f"{k}:{v}" for k, v in run["errors"].items()) or "-")
    return cells


def _format_table(header: Sequence[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    lines = ["  ".join(str(cell).rjust(width) for cell, width in zip(line, widths, strict=True))
             for line in [list(header), *rows]]  # fmt: skip
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def runs_table(runs: list[dict[str, Any]]) -> str:
    """Every run: throughput, latency (ms), mean job size at the broker and errors."""
    header = [
        "scenario", "system", "path", "c", "batch", "req/s", "inst/s", "MB/s",
        *(f"{key} ms" for key in LATENCY_COLUMNS), "job", "errors",
    ]  # fmt: skip
    return _format_table(header, [_row(run) for run in runs])


def targets_table(targets: list[dict[str, Any]]) -> str:
    """Each target: its ratio, goal and verdict."""
    verdicts: dict[bool | None, str] = {True: "met", False: "MISSED", None: "n/a"}
    rows = [
        [t["id"], "-" if t["ratio"] is None else f"{t['ratio']:.3f}", t["goal"],
         _verdict(t, verdicts), t["detail"]]
        for t in targets
    ]  # fmt: skip
    return _format_table(["target", "ratio", "goal", "verdict", "measured"], rows)


def _verdict(target: dict[str, Any], words: dict[bool | None, str]) -> str:
    """The verdict of a target row; a ratio without a goal is only reported."""
    if target["met"] is None and target["ratio"] is not None:
        return "reported"
    return words[target["met"]]


def _hop_rows(hops: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for hop in hops:
        run = [hop["scenario"], hop["path"], str(hop["concurrency"]), str(hop["batch"])]
        for per in ("request", "instance"):
            costs = hop[f"per_{per}_us"]
            cells = ["-" if costs[key] is None else f"{costs[key]:.1f}" for key in HOPS]
            rows.append([*run, per, *cells])
    return rows


HOP_HEADER = ("scenario", "path", "c", "batch", "µs CPU per", *HOPS.values())


def hops_table(hops: list[dict[str, Any]]) -> str:
    """T7: µs of CPU per request and per instance in each hop."""
    return _format_table(HOP_HEADER, _hop_rows(hops))


def memory_table(memory: dict[str, dict[str, dict[str, float]]]) -> str:
    """Peak RSS seen of every process, per scenario and system."""
    rows = [
        [scenario, system, label, f"{rss:.0f}"]
        for scenario, systems in memory.items()
        for system, sizes in systems.items()
        for label, rss in sizes.items()
    ]
    return _format_table(["scenario", "system", "process", "RSS MB"], rows)


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write the results document (atomically, so a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_suffix(".json.tmp")
    staged.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n")
    staged.replace(path)


def _series(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Closed-loop runs by "system path [batch]", each sorted by concurrency."""
    series: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        if run["rate"] is None:
            suffix = f" b={run['batch']}" if run["batch"] != 1 else ""
            series.setdefault(f"{run['system']} {run['path']}{suffix}", []).append(run)
    for points in series.values():
        points.sort(key=lambda run: run["concurrency"])
    return series


def plot_scenario(scenario: str, runs: list[dict[str, Any]], out_dir: Path) -> Path | None:
    """Throughput and latency percentiles against concurrency for one scenario's runs."""
    series = _series([run for run in runs if run["scenario"] == scenario])
    if not series:
        return None
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    for index, (name, points) in enumerate(sorted(series.items())):
        color = f"C{index % 10}"
        if points[0]["system"] == "direct":
            for point in points:
                left.axhline(point["instances_per_s"], color=color, linestyle=":", label=name)
            continue
        xs = [point["concurrency"] for point in points]
        left.plot(xs, [p["instances_per_s"] for p in points], "o-", color=color, label=name)
        right.plot(xs, [p["latency_ms"]["p50"] for p in points], "o-", color=color, label=name)
        right.plot(xs, [p["latency_ms"]["p99"] for p in points], "x--", color=color)
    left.set(title=f"{scenario}: throughput", xlabel="requests in flight", ylabel="instances/s")
    right.set(
        title=f"{scenario}: latency (solid p50, dashed p99)",
        xlabel="requests in flight",
        ylabel="ms",
    )
    for axis in (left, right):
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=7)
    figure.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{scenario}.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def markdown(document: dict[str, Any]) -> str:
    """The runs, targets, T7 (when measured) and memory of a results document as Markdown
    tables."""

    def table(header: Sequence[str], rows: list[list[str]]) -> str:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)

    header = ["scenario", "system", "path", "c", "batch", "req/s", "inst/s", "MB/s",
              *(f"{key} ms" for key in LATENCY_COLUMNS), "job", "errors"]  # fmt: skip
    parts = [table(header, [_row(run) for run in document["runs"]])]
    verdicts: dict[bool | None, str] = {True: "met", False: "**missed**", None: "not measured"}
    rows = [[t["id"], t["description"], t["goal"],
             "-" if t["ratio"] is None else f"{t['ratio']:.2f}", _verdict(t, verdicts), t["detail"]]
            for t in document["targets"]]  # fmt: skip
    parts.append(table(["target", "what", "goal", "ratio", "verdict", "measured"], rows))
    if document.get("hops"):
        parts.append(table(HOP_HEADER, _hop_rows(document["hops"])))
    memory = document["memory"]
    rows = [[scenario, system, label, f"{rss:.0f}"]
            for scenario, systems in memory.items()
            for system, sizes in systems.items() if system.startswith("msq")
            for label, rss in sizes.items()]  # fmt: skip
    parts.append(table(["scenario", "system", "process", "peak RSS MB"], rows))
    return "\n\n".join(parts) + "\n"
