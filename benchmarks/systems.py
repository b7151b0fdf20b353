"""The systems under test, each a set of server processes on free loopback ports:

- `msq`: broker, one worker, the gRPC gateway and the REST gateway (gunicorn);
- `msq-nobatch`: the same with the worker's batching off (`--max-batch-size 1`);
- `bare-grpc`: the gRPC floor (`msq.benchmarks.bare_grpc`);
- `bare-rest`: the REST floor (`msq.benchmarks.bare_rest` under the same gunicorn settings);
- `ray`: Ray Serve with `@serve.batch` (`msq.benchmarks.ray_peer`), when ray is installed;
- `litserve`: LitServe with its batching (`msq.benchmarks.litserve_peer`), when installed.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from msq.benchmarks import procs
from msq.benchmarks.clients import Endpoints
from msq.benchmarks.peers import ready_line
from msq.benchmarks.scenarios import Scenario

#: Gunicorn worker processes of the REST servers (msq's gateway and the bare app alike).
REST_WORKERS = 2
#: The bare REST app runs under msq's REST gateway settings (asgi worker, keep-alive, ...).
GUNICORN_CONFIG = "python:msq.gateways.rest.gunicorn_conf"
#: What each gunicorn ASGI worker logs once it accepts requests.
GUNICORN_READY = "ASGI server listening"
#: The paths each system serves; `direct` (the in-process compute floor) starts no server.
#: Set to 1 to run msq's broker, worker and gRPC gateway with their metrics served (any port).
METRICS_ENV = "MSQ_BENCH_METRICS"
MSQ_PATHS = ("ms-grpc", "v2-grpc", "ms-rest", "v2-rest", "link")
SYSTEM_PATHS: dict[str, tuple[str, ...]] = {
    "msq": MSQ_PATHS,
    "msq-nobatch": MSQ_PATHS,
    "bare-grpc": ("ms-grpc",),
    "bare-rest": ("ms-rest",),
    "ray": ("ms-rest",),
    "litserve": ("ms-rest",),
    "direct": ("inproc",),
}


class SystemUnavailableError(RuntimeError):
    """A system that cannot run here (e.g. ray is not installed); the message says why."""


@dataclass(slots=True)
class System:
    """A started system: where it listens, its processes, and (for msq) its broker."""

    name: str
    endpoints: Endpoints
    servers: list[procs.Server] = field(default_factory=list)
    #: A folder of the system's own (its ipc sockets), removed once it stopped.
    runtime_dir: Path | None = None

    def memory(self) -> dict[str, float]:
        """RSS in MB of every process of the system."""
        sizes: dict[str, float] = {}
        for server in self.servers:
            sizes.update(server.rss_mb())
        return sizes

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds used so far by each server process (with its children), by name."""
        return {server.name: server.cpu_s() for server in self.servers}

    def stop(self) -> None:
        procs.stop(self.servers)
        if self.runtime_dir is not None:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)


def _started(
    name: str,
    endpoints: Endpoints,
    servers: Sequence[procs.Server],
    runtime_dir: Path | None = None,
) -> System:
    system = System(name, endpoints, list(servers), runtime_dir)
    try:
        procs.wait_ready(servers)
    except BaseException:
        system.stop()
        raise
    return system


def start_msq(scenario: Scenario, log_dir: Path, *, batching: bool = True) -> System:
    """Broker, worker and both gateways serving the scenario's servable; they reach the broker
    over ipc:// sockets in a private folder, as `msq serve` runs them by default."""
    runtime_dir = Path(tempfile.mkdtemp(prefix="msq-bench-"))
    frontend, backend = f"ipc://{runtime_dir}/frontend", f"ipc://{runtime_dir}/backend"
    grpc_port, rest_port = procs.free_port(), procs.free_port()
    worker = [
        "msq-worker",
        "--device",
        "cpu",
        "--servable-dir",
        str(scenario.servable_dir),
        "--servable",
        scenario.servable,
        "--broker",
        backend,
    ]
    if not batching:
        worker += ["--max-batch-size", "1"]
    grpc_gateway = ["msq-grpc-gateway", "--listen", f"127.0.0.1:{grpc_port}", "--broker", frontend]
    rest_gateway = [
        "msq-rest-gateway",
        "--listen",
        f"127.0.0.1:{rest_port}",
        "--workers",
        str(REST_WORKERS),
        "--broker",
        frontend,
    ]
    metrics = ["--metrics-port", "0"] if os.environ.get(METRICS_ENV) == "1" else []
    worker += metrics
    grpc_gateway += metrics
    if scenario.timeout_s is not None:
        grpc_gateway += ["--default-timeout", str(scenario.timeout_s)]
        rest_gateway += ["--timeout", str(scenario.timeout_s)]
    servers = [
        procs.start(
            "broker",
            ["msq-broker", "--frontend", frontend, "--backend", backend, *metrics],
            log_dir,
            ready_line="msq-broker ready",
        ),
        procs.start("worker", worker, log_dir, ready_line="msq-worker ready"),
        procs.start("grpc-gateway", grpc_gateway, log_dir, ready_line="msq-grpc-gateway ready"),
        procs.start(
            "rest-gateway",
            rest_gateway,
            log_dir,
            ready_line=GUNICORN_READY,
            ready_times=REST_WORKERS,
        ),
    ]
    endpoints = Endpoints(
        grpc=f"127.0.0.1:{grpc_port}",
        rest=f"http://127.0.0.1:{rest_port}",
        broker=frontend,
        link_timeout_s=scenario.timeout_s,
    )
    return _started("msq" if batching else "msq-nobatch", endpoints, servers, runtime_dir)


def start_bare_grpc(scenario: Scenario, log_dir: Path) -> System:
    """The bare gRPC server running the scenario in-process."""
    port = procs.free_port()
    argv = [sys.executable, "-m", "msq.benchmarks.bare_grpc", "--scenario", scenario.name]
    server = procs.start(
        "bare-grpc", [*argv, "--port", str(port)], log_dir, ready_line="bare-grpc ready"
    )
    return _started("bare-grpc", Endpoints(grpc=f"127.0.0.1:{port}"), [server])


def start_bare_rest(scenario: Scenario, log_dir: Path) -> System:
    """The bare Falcon app under gunicorn, running the scenario in-process."""
    port = procs.free_port()
    argv = [
        "gunicorn",
        "--config",
        GUNICORN_CONFIG,
        "--workers",
        str(REST_WORKERS),
        "--bind",
        f"127.0.0.1:{port}",
        "msq.benchmarks.bare_rest:create_app()",
    ]
    server = procs.start(
        "bare-rest",
        argv,
        log_dir,
        ready_line=GUNICORN_READY,
        ready_times=REST_WORKERS,
        env={"MSQ_BENCH_SCENARIO": scenario.name},
    )
    return _started("bare-rest", Endpoints(rest=f"http://127.0.0.1:{port}"), [server])


#: The peers: system name -> (the package it needs, how to install it).
PEERS = {
    "ray": ("ray", 'pip install "ray[serve]"'),
    "litserve": ("litserve", 'pip install "msq[litserve]"'),
}


def start_peer(name: str, scenario: Scenario, log_dir: Path) -> System:
    """A peer (`msq.benchmarks.<name>_peer`) running the scenario; `SystemUnavailableError`
    when its framework is not installed."""
    package, install = PEERS[name]
    if importlib.util.find_spec(package) is None:
        raise SystemUnavailableError(f"{package} is not installed ({install})")
    port = procs.free_port()
    argv = [sys.executable, "-m", f"msq.benchmarks.{name}_peer", "--scenario", scenario.name]
    server = procs.start(name, [*argv, "--port", str(port)], log_dir, ready_line=ready_line(name))
    return _started(name, Endpoints(rest=f"http://127.0.0.1:{port}"), [server])


STARTERS: dict[str, Any] = {
    "msq": start_msq,
    "msq-nobatch": lambda scenario, log_dir: start_msq(scenario, log_dir, batching=False),
    "bare-grpc": start_bare_grpc,
    "bare-rest": start_bare_rest,
    **{name: functools.partial(start_peer, name) for name in PEERS},
}


def start_system(name: str, scenario: Scenario, log_dir: Path) -> System:
    """Start the named system for a scenario and wait until it serves."""
    return STARTERS[name](scenario, log_dir / scenario.name / name)  # type: ignore[no-any-return]
