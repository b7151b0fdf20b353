"""Metrics ports for `msq serve`: one per process, listed in a Prometheus file-SD document.

With `--metrics-base-port P`, the broker gets port P and every other process (workers, then
the gRPC gateway) the next ports in order; the REST gateway serves `/metrics` on its own
address. Each target carries the labels `kind` (broker, worker, grpc, rest) and, for a
worker, `servable` and `version`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from msq.launcher.supervisor import Child


@dataclass(frozen=True)
class Target:
    """One `/metrics` endpoint: HOST:PORT and the labels that say what serves it."""

    address: str
    labels: dict[str, str]


def expose_metrics(children: Iterable[Child], host: str, base_port: int) -> list[Target]:
    """Give each child (but the REST gateway, which has its own `/metrics`) a metrics port,
    appending the options to its command, and list every target."""
    targets = []
    port = base_port
    for child in children:
        if child.labels["kind"] == "rest":
            listen = child.command[child.command.index("--listen") + 1]
            targets.append(Target(listen, dict(child.labels)))
            continue
        child.command += ["--metrics-host", host, "--metrics-port", str(port)]
        targets.append(Target(f"{host}:{port}", dict(child.labels)))
        port += 1
    return targets


def file_sd(targets: Iterable[Target]) -> list[dict[str, object]]:
    """The Prometheus file-SD document listing `targets`."""
    return [{"targets": [target.address], "labels": target.labels} for target in targets]


def write_file_sd(path: Path, targets: Iterable[Target]) -> None:
    """Write the file-SD document to `path` atomically (Prometheus watches the file)."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(file_sd(targets), indent=2) + "\n")
    os.replace(temporary, path)
