"""The processes a deployment consists of: `Deployment` → broker, workers and gateways
(`Child` commands for the supervisor; nothing is started here)."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from msq.launcher.config_file import to_toml
from msq.launcher.devices import worker_device
from msq.launcher.settings import (
    TLS,
    Deployment,
    Logging,
    Servable,
    SettingsError,
)
from msq.launcher.supervisor import Child
from msq.proto.curve import CurveError
from msq.security import serve_curve_options

#: The stages started in order: the broker, the workers, the gateways.
Stages = tuple[list[Child], list[Child], list[Child]]


def plan(deployment: Deployment, workdir: Path) -> Stages:
    """Every process of `deployment`; files the broker reads are written to `workdir`."""
    resolved = deployment.resolved()
    return brokers(resolved, workdir), workers(resolved), gateways(resolved)


def on_host(deployment: Deployment, workdir: Path) -> Deployment:
    """`deployment` with its ipc sockets in `workdir` (the launcher's private folder, mode
    0700) unless `broker.runtime_dir` names another folder."""
    if deployment.broker.runtime_dir is not None:
        return deployment
    broker = dataclasses.replace(deployment.broker, runtime_dir=workdir)
    return dataclasses.replace(deployment, broker=broker)


def declares_distributed(config: Path) -> bool:
    """Whether a servable_config.py declares a distributed model, read without running it: a
    call of `declare_servable` with a `rank_size` (MindSpore Serving's older
    `register.declare_servable(servable_file, ...)` declares a one-process model)."""
    try:
        tree = ast.parse(config.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return False  # the worker reports it
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "attr", getattr(node.func, "id", ""))
        first = node.args[0] if node.args else None
        by_position = first is not None and not (
            isinstance(first, ast.Constant) and isinstance(first.value, str)
        )
        if name == "declare_servable" and (
            by_position or any(k.arg == "rank_size" for k in node.keywords)
        ):
            return True
    return False


def curve_options(deployment: Deployment, role: str) -> list[str]:
    """The CURVE options of a "broker", "worker" or "gateway" (none without `curve_dir`; the
    broker's `--allow-insecure`); SettingsError when a key of `curve_dir` is missing."""
    settings = deployment.broker
    options = []
    if settings.curve_dir is not None:
        try:
            options = serve_curve_options(settings.curve_dir)[role]
        except CurveError as exc:
            raise SettingsError(f"broker.curve_dir: {exc}") from None
    if role == "broker" and settings.allow_insecure:
        options.append("--allow-insecure")
    return options


def log_options(log: Logging) -> list[str]:
    """The logging options every child gets."""
    tracing = ["--tracing"] if log.tracing else []
    return ["--log-level", log.level, "--log-format", log.format, *tracing]


def brokers(deployment: Deployment, workdir: Path) -> list[Child]:
    """The brokers; their batching settings go in `workdir/broker-batching.toml`."""
    settings = deployment.broker
    shared = [
        "--max-message-mb", str(settings.max_message_mb),
        "--heartbeat-interval", str(settings.heartbeat_interval_s),
        "--max-redispatch", str(settings.max_redispatch),
        "--default-timeout", str(deployment.timeouts.request_s),
        "--job-timeout", str(deployment.timeouts.job_s),
    ]  # fmt: skip
    if deployment.batching:
        path = workdir / "broker-batching.toml"
        path.write_text(to_toml({"batching": deployment.batching}))
        shared += ["--config", str(path)]
    binds = settings.binds()
    several = len(binds) > 1
    children = []
    for index, (frontend, backend) in enumerate(binds, 1):
        command = [
            "msq-broker", "--frontend", frontend, "--backend", backend, *shared,
            *curve_options(deployment, "broker"),
        ]  # fmt: skip
        labels = {"kind": "broker", "broker": str(index)} if several else {"kind": "broker"}
        name = f"broker #{index}" if several else "broker"
        children.append(Child(name, [*command, *log_options(deployment.log)], labels))
    return children


def workers(deployment: Deployment) -> list[Child]:
    """The workers of every servable of a resolved deployment, in order."""
    on_host = sum(len(servable.worker_devices()) for servable in deployment.servables)
    return [
        child
        for servable in deployment.servables
        for child in servable_workers(deployment, servable, on_host)
    ]


def servable_workers(deployment: Deployment, servable: Servable, on_host: int) -> list[Child]:
    """One servable's workers (`servable` resolved); `on_host` workers share the cores. A
    distributed servable's worker gets every device (one per rank) instead of one."""
    name = f"{servable.name}:{servable.version}" if servable.version else servable.name
    decryption = []
    if servable.dec_key_file is not None:
        decryption = ["--dec-key-file", str(servable.dec_key_file), "--dec-mode", servable.dec_mode]
    assert servable.directory is not None
    assert servable.devices is not None
    # (in the worker's name, `--device`) of each worker
    devices = [(device, worker_device(device)) for device in servable.worker_devices()]
    if declares_distributed(servable.directory / servable.name / "servable_config.py"):
        # Its ranks take the devices, one each: every worker (a group of ranks) gets them all.
        assert servable.workers_per_device is not None
        count = servable.workers_per_device + servable.extra_workers
        devices = [(servable.devices, servable.devices)] * count
    children = []
    for index, (label, device) in enumerate(devices, start=1):
        command = [
            "msq-worker",
            "--device", device,
            "--servable-dir", str(servable.directory),
            "--servable", name,
            "--broker", deployment.broker.backends(),
            "--workers-on-host", str(on_host),
            *decryption,
            *(["--legacy-imports"] if servable.legacy_imports else []),
            *curve_options(deployment, "worker"),
            *log_options(deployment.log),
        ]  # fmt: skip
        labels = {"kind": "worker", "servable": servable.name, "version": str(servable.version)}
        children.append(Child(f"worker {name} {label} #{index}", command, labels))
    return children


def gateways(deployment: Deployment) -> list[Child]:
    """The enabled gateways."""
    children = []
    if deployment.grpc.enabled:
        children.append(grpc(deployment))
    if deployment.rest.enabled:
        children.append(rest(deployment))
    return children


def grpc(deployment: Deployment) -> Child:
    """The gRPC gateway."""
    settings = deployment.grpc
    command = [
        "msq-grpc-gateway",
        "--listen", settings.listen,
        "--broker", deployment.broker.frontends(),
        "--max-msg-mb", str(settings.max_message_mb),
        "--default-timeout", str(deployment.timeouts.request_s),
        *_tls(settings.tls, "--tls-cert", "--tls-key", "--tls-ca"),
        "--grpc-workers", str(settings.workers),
        *curve_options(deployment, "gateway"),
        *log_options(deployment.log),
    ]  # fmt: skip
    return Child("grpc", command, {"kind": "grpc"})


def rest(deployment: Deployment) -> Child:
    """The REST gateway."""
    settings = deployment.rest
    command = [
        "msq-rest-gateway",
        "--listen", settings.listen,
        "--broker", deployment.broker.frontends(),
        "--workers", str(settings.workers),
        "--max-body-mb", str(settings.max_body_mb),
        "--timeout", str(deployment.timeouts.request_s),
        *_tls(settings.tls, "--certfile", "--keyfile", "--ca-certs"),
        *curve_options(deployment, "gateway"),
        *log_options(deployment.log),
    ]  # fmt: skip
    return Child("rest", command, {"kind": "rest"})


def _tls(tls: TLS | None, cert: str, key: str, ca: str) -> list[str]:
    if tls is None:
        return []
    options = [cert, str(tls.cert), key, str(tls.key)]
    if tls.ca is not None:
        options += [ca, str(tls.ca)]
    if tls.verify_client:
        options.append("--verify-client")
    return options
