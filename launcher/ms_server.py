"""MindSpore Serving's server start API (`mindspore_serving.server`) over msq's processes.

    from msq.launcher import ms_server as server  # under `msq run`: from mindspore_serving ...

    server.start_servables(server.ServableStartConfig(servable_dir, "add", device_ids=(0, 1)))
    server.start_grpc_server("127.0.0.1:5500")
    server.start_restful_server("127.0.0.1:1500")

The same signatures, defaults and messages as MindSpore Serving. Each call adds processes to
one deployment (`msq.launcher.settings`, `msq.launcher.plan`): the first starts msq's broker,
`start_servables` its workers (one per device id, and `num_parallel_workers` in all), the other
two the gateways; a supervisor thread keeps them running after the script's main returns, until
`stop()`, Ctrl-C or SIGTERM. A failed call stops everything and raises RuntimeError.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from msq.launcher import plan
from msq.launcher.ms_checks import (
    GRPC_TAG,
    RESTFUL_TAG,
    as_sequence,
    check_address,
    check_bool,
    check_decryption,
    check_int,
    check_int_tuple,
    check_str,
)
from msq.launcher.ms_runtime import Server
from msq.launcher.settings import TLS, Deployment, Servable

__all__ = [
    "SSLConfig",
    "ServableStartConfig",
    "configure",
    "running",
    "set_max_enqueued_requests",
    "start_grpc_server",
    "start_restful_server",
    "start_servables",
    "stop",
    "wait",
]

#: The names `mindspore_serving.server` has (`msq.workers.compat` aliases them).
MINDSPORE_SERVING_API = (
    "SSLConfig",
    "ServableStartConfig",
    "start_grpc_server",
    "start_restful_server",
    "start_servables",
    "stop",
)

log = logging.getLogger(__name__)
_P = ParamSpec("_P")
_R = TypeVar("_R")
DEVICE_TYPES = ("ascend", "gpu", "cpu")


class SSLConfig:
    """A server's TLS: PEM files of its certificate chain and private key; `custom_ca` verifies
    client certificates, required when `verify_client` (mutual TLS)."""

    def __init__(
        self,
        certificate: str,
        private_key: str,
        custom_ca: str | None = None,
        verify_client: bool = False,
    ) -> None:
        check_str("certificate", certificate)
        check_str("private_key", private_key)
        check_bool("verify_client", verify_client)
        if verify_client:
            check_str("custom_ca", custom_ca)
        self.certificate = certificate
        self.private_key = private_key
        self.custom_ca = custom_ca
        self.verify_client = verify_client

    def tls(self) -> TLS:
        """msq's TLS settings (the CA only with `verify_client`, as in MindSpore Serving)."""
        ca = Path(self.custom_ca) if self.verify_client and self.custom_ca else None
        return TLS(Path(self.certificate), Path(self.private_key), ca, self.verify_client)


class ServableStartConfig:
    """How to start one servable: its directory and name, the device ids (one worker each),
    the version (0: newest), the device type (None: what this MindSpore supports), the total
    number of workers, and the MindIR decryption key and mode."""

    def __init__(  # noqa: PLR0917 - MindSpore Serving's signature
        self,
        servable_directory: str,
        servable_name: str,
        device_ids: int | list[int] | tuple[int, ...] | None = None,
        version_number: int = 0,
        device_type: str | None = None,
        num_parallel_workers: int = 0,
        dec_key: bytes | None = None,
        dec_mode: str = "AES-GCM",
    ) -> None:
        check_str("servable_directory", servable_directory)
        check_str("servable_name", servable_name)
        check_int("version_number", version_number, 0)
        check_int("num_parallel_workers", num_parallel_workers, 0, 64)
        check_decryption(dec_key, dec_mode)
        ids = check_int_tuple("device_ids", [] if device_ids is None else device_ids, 0)
        if device_type is not None:
            check_str("device_type", device_type)
            if device_type.lower() not in (*DEVICE_TYPES, "none"):
                raise RuntimeError(
                    f"Unsupported device type '{device_type}', only support 'Ascend', 'GPU', "
                    "'CPU' and None, case ignored"
                )
        self.servable_directory = str(Path(servable_directory).resolve())
        self.servable_name = servable_name
        self.device_ids = ids
        self.version_number = version_number
        self.device_type = "none" if device_type is None else device_type.lower()
        self.num_parallel_workers = num_parallel_workers or (0 if ids else 1)
        self._dec_key = dec_key
        self.dec_mode = dec_mode

    @property
    def dec_key(self) -> bytes | None:
        """The decryption key (never shown by repr, logged or passed on the command line)."""
        return self._dec_key

    def __repr__(self) -> str:
        key = "None" if self._dec_key is None else "<hidden>"
        return (
            f"ServableStartConfig({self.servable_directory!r}, {self.servable_name!r}, "
            f"device_ids={self.device_ids}, version_number={self.version_number}, "
            f"device_type={self.device_type!r}, num_parallel_workers="
            f"{self.num_parallel_workers}, dec_key={key}, dec_mode={self.dec_mode!r})"
        )

    def servable(self, dec_key_file: Path | None) -> Servable:
        """msq's settings of this servable; the key, if any, is in `dec_key_file`."""
        kind = self.device_type if self.device_type != "none" else default_device_type()
        if not self.device_ids:
            devices = "cpu" if kind == "cpu" else f"{kind}:0"
        else:
            devices = f"{kind}:{','.join(map(str, self.device_ids))}"
        count = max(1, len(self.device_ids))
        return Servable(
            self.servable_name,
            version=self.version_number,
            directory=Path(self.servable_directory),
            devices=devices,
            workers_per_device=1,
            extra_workers=max(0, self.num_parallel_workers - count),
            dec_key_file=dec_key_file,
            dec_mode=self.dec_mode,
        )


@functools.cache
def default_device_type() -> str:
    """The device type MindSpore Serving's None means: Ascend or GPU when this MindSpore build
    and machine have one, else CPU."""
    import mindspore as ms  # noqa: PLC0415 - importing MindSpore takes seconds

    for kind in ("ascend", "gpu"):
        if getattr(ms.device_context, kind).is_available():
            return kind
    return "cpu"


class _Current:
    """The process's one deployment: the settings start calls begin from (the defaults, or
    `msq run --config FILE`'s), and the server they started."""

    def __init__(self) -> None:
        self.base = Deployment()
        self.server = Server(self.base)


_CURRENT = _Current()


def configure(deployment: Deployment) -> None:
    """Start from `deployment`'s settings (broker endpoints, timeouts, batching, gateway
    workers and limits, logging) instead of the defaults; before the first start call."""
    if _CURRENT.server.running:
        raise RuntimeError("configure() must be called before the first start call")
    _CURRENT.base = deployment
    _CURRENT.server = Server(deployment)


def current() -> Server:
    """The deployment this process runs (for `msq.launcher.ms_distributed`'s start calls)."""
    return _CURRENT.server


def stop_on_error(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """As MindSpore Serving: a start call that fails stops everything, then raises."""

    @functools.wraps(function)
    def guarded(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            with _CURRENT.server.lock:
                return function(*args, **kwargs)
        except BaseException:
            stop()
            raise

    return guarded


@stop_on_error
def start_servables(servable_configs: Any, enable_lite: bool = False) -> None:
    """Start the workers of one or more servables; return once every worker is ready."""
    configs = as_sequence(servable_configs, (ServableStartConfig,), "ServableStartConfig")
    check_bool("enable_lite", enable_lite)
    checked: list[ServableStartConfig] = []
    for config in configs:
        if not isinstance(config, ServableStartConfig):
            raise RuntimeError(
                f"The item of parameter '{servable_configs}' should be ServableStartConfig, "
                f"but actually {type(config)}"
            )
        checked.append(config)
    if enable_lite:
        raise RuntimeError("msq does not run MindSpore Lite: use enable_lite=False")
    _CURRENT.server.ensure_broker()
    servables = [
        config.servable(
            None if config.dec_key is None else _CURRENT.server.key_file(config.dec_key)
        )
        for config in checked
    ]
    for servable in servables:
        log.info("starting %s on %s", servable.name, ", ".join(servable.worker_devices()))
    _CURRENT.server.workers_on_host += sum(len(s.worker_devices()) for s in servables)
    workers = [
        child
        for servable in servables
        for child in plan.servable_workers(
            _CURRENT.server.deployment, servable, _CURRENT.server.workers_on_host
        )
    ]
    try:
        _CURRENT.server.start(*workers)
    except RuntimeError as exc:
        raise RuntimeError(f"Fail to start workers: {exc}") from None


def _gateway_ssl(ssl_config: object, article: str) -> TLS | None:
    if ssl_config is None:
        return None
    if not isinstance(ssl_config, SSLConfig):
        raise RuntimeError(f"The type of ssl_config should be {article} of SSLConfig")
    return ssl_config.tls()


@stop_on_error
def start_grpc_server(
    address: str, max_msg_mb_size: int = 100, ssl_config: SSLConfig | None = None
) -> None:
    """Start the gRPC gateway on `address` (`{ip}:{port}` or `unix:{path}`)."""
    check_str("address", address)
    check_int("max_msg_mb_size", max_msg_mb_size, 1, 512)
    tls = _gateway_ssl(ssl_config, "type")
    check_address(address, GRPC_TAG, allow_unix=True)
    if _started("grpc"):
        raise RuntimeError("Serving Error: Serving gRPC server is already running")
    _CURRENT.server.ensure_broker()
    grpc = dataclasses.replace(
        _CURRENT.server.deployment.grpc, listen=address, max_message_mb=max_msg_mb_size, tls=tls
    )
    _CURRENT.server.start(plan.grpc(_with(grpc=grpc)))


@stop_on_error
def start_restful_server(
    address: str, max_msg_mb_size: int = 100, ssl_config: SSLConfig | None = None
) -> None:
    """Start the REST gateway on `address` (`{ip}:{port}`)."""
    check_str("address", address)
    check_int("max_msg_mb_size", max_msg_mb_size, 1, 512)
    tls = _gateway_ssl(ssl_config, "class")
    check_address(address, RESTFUL_TAG)
    if _started("rest"):
        raise RuntimeError("Serving Error: RESTful server is already running")
    _CURRENT.server.ensure_broker()
    rest = dataclasses.replace(
        _CURRENT.server.deployment.rest, listen=address, max_body_mb=max_msg_mb_size, tls=tls
    )
    _CURRENT.server.start(plan.rest(_with(rest=rest)))


def _started(kind: str) -> bool:
    supervisor = _CURRENT.server.supervisor
    return supervisor is not None and any(c.labels["kind"] == kind for c in supervisor.children)


def _with(**tables: Any) -> Deployment:
    return dataclasses.replace(_CURRENT.server.deployment, **tables)


def set_max_enqueued_requests(max_enqueued_requests: int) -> None:
    """The most instances a method's queue holds (default 10000); more are refused with
    "enqueued requests count exceeds the limit N". Call it before the first start call."""
    check_int("max_enqueued_requests", max_enqueued_requests, 1)
    with _CURRENT.server.lock:
        if _CURRENT.server.running:
            raise RuntimeError(
                "set_max_enqueued_requests must be called before start_servables, "
                "start_grpc_server and start_restful_server (msq's broker reads it at start)"
            )
        batching = dict(_CURRENT.server.deployment.batching)
        batching["*"] = {**batching.get("*", {}), "max_queue_size": max_enqueued_requests}
        _CURRENT.server.deployment = _with(batching=batching)


def stop() -> None:
    """Stop the gateways, the workers and the broker; later start calls start afresh."""
    server, _CURRENT.server = _CURRENT.server, Server(_CURRENT.base)
    server.stop()


def running() -> bool:
    """Whether a start call has started processes that have not been stopped."""
    return _CURRENT.server.running


def wait() -> None:
    """Block until the server stops (`stop()`, Ctrl-C or SIGTERM); at once if none runs."""
    thread = _CURRENT.server.thread
    if thread is not None:
        thread.join()
