"""`msq serve`: start a whole deployment (broker, workers, both gateways) from flags and an
optional TOML config file, and supervise it until Ctrl-C or SIGTERM.

Every option but `--config` and `--print-config` sets one key of the deployment's settings
(`msq.launcher.settings`); flags override the file.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from msq.launcher import config_file
from msq.launcher.control import ControlSettings, ModelController, WorkerTemplate, worker_plan
from msq.launcher.control_link import ControlLink
from msq.launcher.metrics import Target, expose_metrics, write_file_sd
from msq.launcher.plan import Stages, on_host, plan
from msq.launcher.settings import Deployment, SettingsError, from_document
from msq.launcher.supervisor import Supervisor
from msq.process import (
    LOG_FORMATS,
    LOG_LEVELS,
    announce_ready,
    on_stop_signals,
    setup_logging,
)
from msq.proto.batching import SETTINGS
from msq.security import serve_gateway_curve

#: argparse's "not given": unset options stay out of the namespace, so the file's value holds.
_UNSET = argparse.SUPPRESS
_NOT_SETTINGS = ("command", "config", "print_config")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `msq serve` to the launcher's subcommands."""
    serve = commands.add_parser(
        "serve",
        help="start broker, workers and gateways for a servable directory",
        description="Start and supervise a deployment. Settings come from --config FILE "
        "(TOML; see the README) with the flags laid over it.",
    )
    serve.add_argument("servable_dir", nargs="?", type=Path,
                       help="directory of MindSpore Serving-style servables")  # fmt: skip
    serve.add_argument("--config", type=Path, metavar="FILE", help="TOML settings file")
    serve.add_argument("--print-config", action="store_true",
                       help="print the effective settings as TOML and exit")  # fmt: skip
    option = _adder(serve)
    serve.add_argument("--servable", dest="servables", action="append", default=_UNSET,
                       metavar="NAME[:VERSION]",
                       help="servable to serve (repeatable; default: all found)")  # fmt: skip
    option("--device", "devices", str, "devices: cpu, cpu:0,1, gpu:0,1 or ascend:0-7 (default cpu)")
    option("--workers", "workers_per_device", int, "workers per device (default 1)")
    option("--dec-key-file", "dec_key_file", Path, "file holding the MindIR decryption key")
    option("--dec-mode", "dec_mode", str, "AES-GCM (default), AES-CBC or SM4-CBC")
    option("--model-control", "model_control.mode", str,
           "none: serve what is there at start; poll: follow the version folders; explicit: "
           "load and unload through the V2 repository API (default none)")  # fmt: skip
    option("--repository-poll-secs", "model_control.poll_s", float,
           "how often poll mode scans the servable directory (default 15)")  # fmt: skip
    serve.add_argument("--load-model", dest="model_control.load", action="append",
                       default=_UNSET, metavar="NAME",
                       help="explicit mode: a servable to load at start (repeatable)")  # fmt: skip
    serve.add_argument("--version-policy", dest="model_control.version_policies",
                       action="append", default=_UNSET, metavar="[NAME=]POLICY",
                       help="versions to serve: latest (default), latest:N, all or "
                       "specific:V[,V...]; NAME= for one servable (repeatable)")  # fmt: skip
    option("--legacy-imports", "legacy_imports", None,
           "workers map removed MindSpore 1.x modules and Pillow constants")  # fmt: skip
    option("--broker-frontend", "broker.frontend", str, "endpoint gateways connect to")
    option("--broker-backend", "broker.backend", str, "endpoint workers connect to")
    option("--curve-dir", "broker.curve_dir", Path,
           "CURVE on every broker connection, keys of `msq keys generate DIR`")  # fmt: skip
    option("--allow-insecure", "broker.allow_insecure", None,
           "a broker may bind beyond loopback without CURVE (a WARNING)")  # fmt: skip
    option("--broker-transport", "broker.transport", str,
           "how this host's processes reach the brokers: ipc (Unix sockets in a private "
           "folder; default) or tcp (the frontend and backend endpoints)")  # fmt: skip
    option("--brokers", "broker.count", int,
           "brokers side by side (active-active): broker i (from 0) listens on the frontend "
           "and backend ports + 2*i (default 1)")  # fmt: skip
    option("--max-message-mb", "broker.max_message_mb", int, "largest broker message (MB)")
    for setting in SETTINGS.values():
        option(f"--{setting.keyword.replace('_', '-')}", f"batching.*.{setting.name}",
               setting.kind, f"{setting.doc}, for every servable")  # fmt: skip
    option("--default-timeout", "timeouts.request_s", float, "deadline (s) of requests without one")
    option("--job-timeout", "timeouts.job_s", float, "a worker holding a job longer (s) is hung")
    option("--start-timeout", "timeouts.start_s", float, "seconds each stage may take to start")
    option("--grpc", "grpc.listen", str, "gRPC gateway HOST:PORT or unix:PATH (127.0.0.1:5500)")
    option("--grpc-max-msg-mb", "grpc.max_message_mb", int, "largest gRPC message, 1-512 MB")
    option("--grpc-workers", "grpc.workers", int,
           "gRPC gateway processes sharing its port (SO_REUSEPORT; default 1)")  # fmt: skip
    option("--grpc-tls-cert", "grpc.tls.cert", Path, "gRPC: certificate chain (PEM): serve TLS")
    option("--grpc-tls-key", "grpc.tls.key", Path, "gRPC: private key (PEM)")
    option("--grpc-tls-ca", "grpc.tls.ca", Path, "gRPC: CA of client certificates (PEM)")
    option("--grpc-verify-client", "grpc.tls.verify_client", None, "gRPC: mutual TLS")
    option("--no-grpc", "grpc.enabled", False, "do not start the gRPC gateway")
    option("--rest", "rest.listen", str, "REST gateway HOST:PORT (default 127.0.0.1:1500)")
    option("--rest-workers", "rest.workers", int, "gunicorn processes of the REST gateway")
    option("--rest-max-body-mb", "rest.max_body_mb", int, "largest REST body, 1-512 MB")
    option("--rest-tls-cert", "rest.tls.cert", Path, "REST: certificate (PEM): serve HTTPS")
    option("--rest-tls-key", "rest.tls.key", Path, "REST: private key (PEM)")
    option("--rest-tls-ca", "rest.tls.ca", Path, "REST: CA of client certificates (PEM)")
    option("--rest-verify-client", "rest.tls.verify_client", None, "REST: mutual TLS")
    option("--no-rest", "rest.enabled", False, "do not start the REST gateway")
    option("--metrics-base-port", "metrics.base_port", int,
           "serve each process's Prometheus metrics from PORT on (default off; the REST "
           "gateway always serves /metrics on its own address)")  # fmt: skip
    option("--metrics-host", "metrics.host", str, "address the metrics servers bind")
    option("--metrics-sd-file", "metrics.sd_file", Path, "write a Prometheus file-SD JSON file")
    serve.add_argument("--log-level", dest="log.level", type=str.upper, choices=LOG_LEVELS,
                       default=_UNSET, help="logging level (default INFO)")  # fmt: skip
    serve.add_argument("--log-format", dest="log.format", type=str.lower, choices=LOG_FORMATS,
                       default=_UNSET, help="text (default) or json log lines")  # fmt: skip
    option("--tracing", "log.tracing", None, "export OpenTelemetry spans (needs msq[tracing])")


def _adder(parser: argparse.ArgumentParser) -> Callable[[str, str, Any, str], None]:
    def option(flag: str, key: str, kind: Any, help: str) -> None:
        """A flag setting `key`: of type `kind`, or a switch storing True (None) or `kind`."""
        if kind is None or isinstance(kind, bool):
            const = True if kind is None else kind
            parser.add_argument(flag, dest=key, action="store_const", const=const,
                                default=_UNSET, help=help)  # fmt: skip
        else:
            parser.add_argument(flag, dest=key, type=kind, default=_UNSET, help=help)

    return option


def settings_from(args: argparse.Namespace) -> Deployment:
    """The effective deployment settings: the `--config` file with the flags over it."""
    document = config_file.read(args.config) if args.config else {}
    given = {k: v for k, v in vars(args).items() if k not in _NOT_SETTINGS and v is not None}
    servables = given.pop("servables", None)
    keys = {"dec_key_file", "dec_mode", "legacy_imports"}
    per_servable = {key: given.pop(key) for key in keys & given.keys()}
    merged = config_file.overlay(document, given)
    if servables is not None:
        merged["servables"] = [_servable(text) for text in servables]
    if per_servable:
        entries = merged.get("servables") or _every_servable(merged)
        merged["servables"] = [{**entry, **per_servable} for entry in entries]
    return from_document(merged).resolved()


def _servable(text: str) -> dict[str, object]:
    name, _, version = text.partition(":")
    if not name or (version and not version.isdigit()):
        raise SettingsError(f"servables: invalid servable {text!r}: use NAME or NAME:VERSION")
    return {"name": name, "version": int(version or 0)}


def _every_servable(document: dict[str, object]) -> list[dict[str, object]]:
    listed = from_document({k: v for k, v in document.items() if k != "servables"}).resolved()
    return [{"name": servable.name} for servable in listed.servables]


def run(args: argparse.Namespace) -> int:
    """Run `msq serve` until Ctrl-C or SIGTERM (stopping every process it started)."""
    try:
        deployment = settings_from(args)
    except SettingsError as exc:
        print(f"msq serve: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        sys.stdout.write(config_file.to_toml(deployment))
        return 0
    setup_logging("msq", deployment.log.level, deployment.log.format)
    workdir = Path(tempfile.mkdtemp(prefix="msq-serve-"))
    try:
        deployment = on_host(deployment, workdir)
        stages, control = processes(deployment, workdir)
    except SettingsError as exc:
        print(f"msq serve: {exc}", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)
        return 2
    supervisor = Supervisor()
    link = None
    if control is not None:
        curve_dir = deployment.broker.curve_dir
        curve = None if curve_dir is None else serve_gateway_curve(curve_dir)
        frontends = [frontend for frontend, _ in deployment.broker.local_endpoints()]
        controller = ModelController(
            supervisor, *control, stages[1], broker_frontend=frontends[0],
            start_timeout_s=deployment.timeouts.start_s, curve=curve,
        )  # fmt: skip
        link = ControlLink(controller, frontends, curve)
    try:
        return _serve(deployment, stages, supervisor, link)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def processes(
    deployment: Deployment, workdir: Path
) -> tuple[Stages, tuple[ControlSettings, WorkerTemplate] | None]:
    """What `msq serve` starts: `msq.launcher.plan`'s processes, except that with a servable
    directory the workers are the model controller's (each at its version), returned with the
    controller's settings and worker template."""
    broker, workers, gateways = plan(deployment, workdir)
    if deployment.servable_dir is None:  # servables listed with their own directories
        return (broker, workers, gateways), None
    control, template, workers = worker_plan(deployment)
    return (broker, workers, gateways), (control, template)


def _serve(
    deployment: Deployment, stages: Stages, supervisor: Supervisor, link: ControlLink | None
) -> int:
    targets: list[Target] = []
    metrics = deployment.metrics
    if metrics.base_port is not None:
        children = [child for stage in stages for child in stage]
        targets = expose_metrics(children, metrics.host, metrics.base_port)
        if metrics.sd_file is not None:
            write_file_sd(metrics.sd_file, targets)
    on_stop_signals(supervisor.stop)
    try:
        for stage in stages:
            supervisor.start(*stage, timeout_s=deployment.timeouts.start_s)
    except RuntimeError as exc:
        logging.error("start-up failed: %s", exc)
        supervisor.shutdown()
        return 1
    if link is not None:
        link.start()
    count = sum(len(stage) for stage in stages)
    announce_ready("msq-serve", f"{count} processes started")
    print(banner(deployment, targets), file=sys.stderr, flush=True)
    supervisor.watch()
    logging.info("stopping")
    if link is not None:
        link.stop()
    supervisor.shutdown()
    return 0


def banner(deployment: Deployment, targets: list[Target]) -> str:
    """What `msq serve` prints once everything is ready."""
    lines = ["msq ready:"]
    grpc, rest = deployment.grpc, deployment.rest
    if grpc.enabled:
        scheme = "TLS" if grpc.tls else "plaintext"
        lines.append(f"  gRPC (MindSpore Serving MSService + KServe V2, {scheme}): {grpc.listen}")
    if rest.enabled:
        base = f"{'https' if rest.tls else 'http'}://{rest.listen}"
        lines.append(f"  REST: {base}/model/<servable>:<method>  and  /v2/...")
        lines.append(
            f'  try: curl -X POST -d \'{{"instances":{{"x1":[[1.0,1.0],[1.0,1.0]],'
            f'"x2":[[1.0,1.0],[1.0,1.0]]}}}}\' {base}/model/add:add_common'
        )
    broker = deployment.broker
    for (frontend, backend), (local, local_backend) in zip(
        broker.endpoints(), broker.local_endpoints(), strict=True
    ):
        lines.append(f"  broker: gateways -> {frontend}, workers -> {backend}")
        if local != frontend:
            lines.append(f"    (this host's processes: {local}, {local_backend})")
    for target in targets:
        what = " ".join(target.labels.values())
        lines.append(f"  metrics ({what}): http://{target.address}/metrics")
    lines.append("  Ctrl-C stops everything.")
    return "\n".join(lines)
