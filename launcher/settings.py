"""A whole deployment's settings, one typed model: what `msq serve` and the MindSpore Serving
start API (`msq.launcher.ms_server`) start.

`Deployment` and the tables under it declare every setting once (its type, default and bounds);
`from_document` builds them from a TOML-shaped mapping (the `--config` file with the command
line laid over it), refusing unknown keys and bad values with a message that names the key, and
`msq.launcher.config_file` prints them back as TOML. `msq.launcher.plan` derives the processes.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from msq.broker.settings import BrokerSettings
from msq.gateways.grpc.workers import check_listen
from msq.launcher.devices import parse_devices
from msq.launcher.repository import Policies, PolicyError
from msq.metrics import DEFAULT_METRICS_HOST
from msq.process import LOG_FORMATS, LOG_LEVELS
from msq.proto import transport
from msq.proto.batching import BatchingError, read_settings
from msq.proto.deadline import DEFAULT_TIMEOUT_S
from msq.workers.decryption import DEC_MODES, DEFAULT_DEC_MODE

_BROKER = BrokerSettings()


class SettingsError(ValueError):
    """An unknown key or a bad value in a deployment's settings; the message names the key."""


def _bounded(default: Any, minimum: float | None = None, maximum: float | None = None) -> Any:
    """A numeric setting with inclusive bounds, checked by `from_document`."""
    return field(default=default, metadata={"minimum": minimum, "maximum": maximum})


@dataclass(frozen=True, slots=True)
class TLS:
    """A gateway's certificate chain and key (PEM files); `ca` signs client certificates, which
    `verify_client` makes mandatory (mutual TLS)."""

    cert: Path
    key: Path
    ca: Path | None = None
    verify_client: bool = False

    def __post_init__(self) -> None:
        if self.verify_client and self.ca is None:
            raise SettingsError("verify_client: needs ca (the CA of the client certificates)")


@dataclass(frozen=True, slots=True)
class Servable:
    """One servable: its workers (`workers_per_device` on each device, then `extra_workers`
    spread over the devices) and its model decryption. Unset: the deployment's value."""

    name: str
    version: int = _bounded(0, 0)
    directory: Path | None = None
    devices: str | None = None
    workers_per_device: int | None = _bounded(None, 1)
    extra_workers: int = _bounded(0, 0)
    dec_key_file: Path | None = None
    dec_mode: str = DEFAULT_DEC_MODE
    #: Workers map removed MindSpore 1.x modules and Pillow constants (`msq.workers.legacy`).
    legacy_imports: bool = False

    def __post_init__(self) -> None:
        if self.devices is not None:
            _check_devices(self.devices)
        if self.dec_mode not in DEC_MODES:
            raise SettingsError(
                f"dec_mode: must be one of {', '.join(DEC_MODES)}, not {self.dec_mode!r}"
            )

    def worker_devices(self) -> list[str]:
        """The device of each worker, in start order (needs `devices` and `workers_per_device`)."""
        assert self.devices is not None
        assert self.workers_per_device is not None
        devices = parse_devices(self.devices)
        each = [device for device in devices for _ in range(self.workers_per_device)]
        return each + [devices[index % len(devices)] for index in range(self.extra_workers)]


@dataclass(frozen=True, slots=True)
class Broker:
    """The broker's endpoints and its limits (the batching settings are `Deployment.batching`)."""

    frontend: str = transport.DEFAULT_FRONTEND
    backend: str = transport.DEFAULT_BACKEND
    max_message_mb: int = _bounded(512, 1)
    heartbeat_interval_s: float = _bounded(_BROKER.heartbeat_interval_s, 0.001)
    max_redispatch: int = _bounded(_BROKER.max_redispatch, 0)
    #: Brokers side by side (active-active): broker i (from 0) listens on the frontend and
    #: backend ports + 2*i; every worker and gateway connects to all of them.
    count: int = _bounded(1, 1)
    #: CURVE on every broker connection, with the keys of `msq keys generate DIR`.
    curve_dir: Path | None = None
    #: Let a broker bind a non-loopback address without CURVE (logged as a WARNING).
    allow_insecure: bool = False
    #: How the deployment's own processes reach its brokers: "ipc" (Unix sockets in
    #: `runtime_dir`; the brokers still bind `frontend` and `backend` too) or "tcp".
    transport: str = "ipc"
    #: The folder of the ipc sockets (unset: a private one the launcher makes, mode 0700, and
    #: removes at stop).
    runtime_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise SettingsError(
                f"transport: must be {' or '.join(TRANSPORTS)}, not {self.transport!r}"
            )
        if self.count > 1:
            for endpoint in (self.frontend, self.backend):
                _, _, port = endpoint.rpartition(":")
                if not endpoint.startswith("tcp://") or not port.isdigit():
                    raise SettingsError(
                        f"count: {self.count} brokers need tcp://HOST:PORT endpoints, not "
                        f"{endpoint}"
                    )

    def endpoints(self) -> list[tuple[str, str]]:
        """(frontend, backend) of each broker."""
        if self.count == 1:
            return [(self.frontend, self.backend)]
        return [
            (_shifted(self.frontend, 2 * index), _shifted(self.backend, 2 * index))
            for index in range(self.count)
        ]

    def local_endpoints(self) -> list[tuple[str, str]]:
        """(frontend, backend) of each broker as the deployment's own processes reach them:
        ipc:// endpoints in `runtime_dir` with the ipc transport (once `runtime_dir` is
        known), else `endpoints()`."""
        configured = self.endpoints()
        if self.transport != "ipc" or self.runtime_dir is None:
            return configured
        return [
            (_ipc(frontend, self.runtime_dir, index, "frontend"),
             _ipc(backend, self.runtime_dir, index, "backend"))
            for index, (frontend, backend) in enumerate(configured, 1)
        ]  # fmt: skip

    def binds(self) -> list[tuple[str, str]]:
        """(frontend, backend) of each broker as it binds them: its local endpoints and, when
        they differ, its configured ones (comma-separated; the last one is announced)."""
        return [
            (local if local == frontend else f"{local},{frontend}",
             back if back == backend else f"{back},{backend}")
            for (local, back), (frontend, backend) in zip(
                self.local_endpoints(), self.endpoints(), strict=True
            )
        ]  # fmt: skip

    def frontends(self) -> str:
        """Every broker's local frontend, comma-separated (a gateway's `--broker`)."""
        return ",".join(frontend for frontend, _ in self.local_endpoints())

    def backends(self) -> str:
        """Every broker's local backend, comma-separated (a worker's `--broker`)."""
        return ",".join(backend for _, backend in self.local_endpoints())


#: How the deployment's own processes reach the brokers (`Broker.transport`).
TRANSPORTS = ("ipc", "tcp")
#: The longest path of a Unix socket (`sun_path` less its NUL byte).
MAX_IPC_PATH = 107


def _ipc(endpoint: str, runtime_dir: Path, index: int, role: str) -> str:
    """Broker `index`'s ipc endpoint for `role` in `runtime_dir` (an ipc:// endpoint stays)."""
    if endpoint.startswith("ipc://"):
        return endpoint
    path = runtime_dir / f"broker-{index}-{role}"
    if len(str(path).encode()) > MAX_IPC_PATH:
        raise SettingsError(
            f"broker.runtime_dir: the socket path {path} is longer than {MAX_IPC_PATH} bytes; "
            'choose a shorter folder or transport = "tcp"'
        )
    return f"ipc://{path}"


def _shifted(endpoint: str, by: int) -> str:
    head, _, port = endpoint.rpartition(":")
    return f"{head}:{int(port) + by}"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """`request_s`: the deadline of requests that set none (gateways and broker); `job_s`: a
    worker holding a job longer is hung; `start_s`: each stage's time to become ready."""

    request_s: float = _bounded(DEFAULT_TIMEOUT_S, 0.001)
    job_s: float = _bounded(_BROKER.job_timeout_s, 0.001)
    start_s: float = _bounded(180.0, 1)


@dataclass(frozen=True, slots=True)
class Grpc:
    """The gRPC gateway (`listen` is HOST:PORT or unix:PATH; `workers` processes share a
    HOST:PORT with SO_REUSEPORT)."""

    enabled: bool = True
    listen: str = "127.0.0.1:5500"
    max_message_mb: int = _bounded(100, 1, 512)
    tls: TLS | None = None
    workers: int = _bounded(1, 1)

    def __post_init__(self) -> None:
        try:
            check_listen(self.listen, self.workers)
        except ValueError as exc:
            raise SettingsError(f"workers: {exc}") from None


@dataclass(frozen=True, slots=True)
class Rest:
    """The REST gateway (gunicorn, `workers` processes)."""

    enabled: bool = True
    listen: str = "127.0.0.1:1500"
    workers: int = _bounded(2, 1)
    max_body_mb: int = _bounded(100, 1, 512)
    tls: TLS | None = None


@dataclass(frozen=True, slots=True)
class Metrics:
    """Prometheus ports from `base_port` on (None: off), and a file-SD document."""

    base_port: int | None = _bounded(None, 1, 65535)
    host: str = DEFAULT_METRICS_HOST
    sd_file: Path | None = None


@dataclass(frozen=True, slots=True)
class Logging:
    """Every process's log level and format, and OpenTelemetry tracing."""

    level: str = "INFO"
    format: str = "text"
    tracing: bool = False

    def __post_init__(self) -> None:
        if self.level.upper() not in LOG_LEVELS:
            raise SettingsError(
                f"level: must be one of {', '.join(LOG_LEVELS)}, not {self.level!r}"
            )
        if self.format not in LOG_FORMATS:
            raise SettingsError(f"format: must be {' or '.join(LOG_FORMATS)}, not {self.format!r}")
        object.__setattr__(self, "level", self.level.upper())


#: Triton's model control modes (`msq.launcher.control`).
CONTROL_MODES = ("none", "poll", "explicit")


@dataclass(frozen=True, slots=True)
class ModelControl:
    """Which servable versions run and how that changes while serving (`msq.launcher.control`):
    `mode` none, poll (every `poll_s`) or explicit (`load` at start, then the V2 repository
    API); `version_policies` are `POLICY` (the default) or `NAME=POLICY` items
    (`msq.launcher.repository.Policies`)."""

    mode: str = "none"
    poll_s: float = _bounded(15.0, 0.1)
    load: tuple[str, ...] = ()
    version_policies: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in CONTROL_MODES:
            raise SettingsError(
                f"mode: must be one of {', '.join(CONTROL_MODES)}, not {self.mode!r}"
            )
        try:
            Policies.parse(self.version_policies)
        except PolicyError as exc:
            raise SettingsError(f"version_policies: {exc}") from None


@dataclass(frozen=True, slots=True)
class Deployment:
    """Everything `msq serve` starts. `servables` empty: every servable of `servable_dir`;
    `batching` maps a servable (or "*") to `BatchPolicy` settings by field name."""

    servable_dir: Path | None = None
    devices: str = "cpu"
    workers_per_device: int = _bounded(1, 1)
    servables: tuple[Servable, ...] = ()
    batching: dict[str, dict[str, int | float]] = field(default_factory=dict)
    broker: Broker = field(default_factory=Broker)
    timeouts: Timeouts = field(default_factory=Timeouts)
    grpc: Grpc = field(default_factory=Grpc)
    rest: Rest = field(default_factory=Rest)
    metrics: Metrics = field(default_factory=Metrics)
    log: Logging = field(default_factory=Logging)
    model_control: ModelControl = field(default_factory=ModelControl)

    def __post_init__(self) -> None:
        _check_devices(self.devices)

    def resolved(self) -> Deployment:
        """These settings with every servable listed and its unset values filled in."""
        servables = self.servables
        if self.servable_dir is not None and not self.servable_dir.is_dir():
            raise SettingsError(f"servable_dir: {self.servable_dir} is not a directory")
        if not servables:
            if self.servable_dir is None:
                raise SettingsError("servable_dir: not set (and no [[servables]] listed)")
            servables = tuple(Servable(name) for name in find_servables(self.servable_dir))
            if not servables:
                raise SettingsError(
                    f"servable_dir: no servable (a folder with servable_config.py) in "
                    f"{self.servable_dir}"
                )
        filled = tuple(self._filled(servable) for servable in servables)
        return dataclasses.replace(self, servables=filled)

    def servable_defaults(self, name: str) -> Servable:
        """Servable `name` as listed (unlisted: a `Servable(name)`), its unset values filled in
        from the deployment's."""
        listed = {servable.name: servable for servable in self.servables}
        return self._filled(listed.get(name, Servable(name)))

    def _filled(self, servable: Servable) -> Servable:
        directory = servable.directory or self.servable_dir
        if directory is None:
            raise SettingsError(f"servables: {servable.name!r} has no directory")
        if not directory.is_dir():
            raise SettingsError(f"servables: {servable.name!r}: {directory} is not a directory")
        return dataclasses.replace(
            servable,
            directory=directory,
            devices=servable.devices or self.devices,
            workers_per_device=servable.workers_per_device or self.workers_per_device,
        )


def find_servables(servable_dir: Path) -> list[str]:
    """Every sub-directory of `servable_dir` holding a servable_config.py."""
    return sorted(p.parent.name for p in servable_dir.glob("*/servable_config.py"))


def _check_devices(text: str) -> None:
    try:
        parse_devices(text)
    except ValueError as exc:
        raise SettingsError(f"devices: {exc}") from None


def from_document(document: Mapping[str, object]) -> Deployment:
    """A `Deployment` from a TOML-shaped mapping; `SettingsError` naming the first bad key."""
    deployment: Deployment = _build(Deployment, document, "")
    return deployment


def _build(cls: type[Any], table: Mapping[str, object], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {spec.name: spec for spec in dataclasses.fields(cls)}
    values: dict[str, object] = {}
    for key, value in table.items():
        name = f"{where}{key}"
        if key not in fields:
            raise SettingsError(f"{name}: unknown key (known: {', '.join(fields)})")
        values[key] = _value(hints[key], value, name, fields[key].metadata)
    try:
        return cls(**values)
    except SettingsError as exc:
        raise SettingsError(f"{where}{exc}" if where else str(exc)) from None
    except TypeError:  # a required key is missing
        missing = [n for n, s in fields.items() if _required(s) and n not in values]
        raise SettingsError(f"{where}{missing[0]}: missing") from None


def _required(spec: dataclasses.Field[Any]) -> bool:
    return spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING


def _value(kind: Any, value: object, name: str, bounds: Mapping[str, Any]) -> object:
    """`value` checked against the type hint `kind` (and numeric `bounds`)."""
    options = typing.get_args(kind) if isinstance(kind, types.UnionType) else (kind,)
    kind = next(option for option in options if option is not type(None))
    if dataclasses.is_dataclass(kind):
        return _build(typing.cast(type[Any], kind), _table(value, name), f"{name}.")
    origin = typing.get_origin(kind)
    if origin is tuple and typing.get_args(kind)[0] is str:
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(item, str) and item for item in value
        ):
            raise SettingsError(f"{name}: must be an array of non-empty strings, not {value!r}")
        return tuple(value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise SettingsError(f"{name}: must be an array of tables, not {value!r}")
        item = typing.get_args(kind)[0]
        return tuple(
            _build(item, _table(entry, name), f"{name}[{index}].")
            for index, entry in enumerate(value)
        )
    if origin is dict:
        return _batching(_table(value, name), name)
    if kind is bool and isinstance(value, bool):
        return value
    if kind in (str, Path) and isinstance(value, (str, Path)) and str(value):
        return kind(value)
    if kind in (int, float) and _is_number(value, kind):
        number = typing.cast(float, value)
        low, high = bounds.get("minimum"), bounds.get("maximum")
        if (low is not None and number < low) or (high is not None and number > high):
            span = f">= {low}" if high is None else f"{low} to {high}"
            raise SettingsError(f"{name}: must be {span}, not {value!r}")
        return kind(number)
    noun = {bool: "true or false", int: "an integer", float: "a number"}.get(
        kind, "a non-empty string"
    )
    raise SettingsError(f"{name}: must be {noun}, not {value!r}")


def _is_number(value: object, kind: type) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) if kind is int else math.isfinite(value)


def _table(value: object, name: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise SettingsError(f"{name}: must be a table, not {value!r}")
    return value


def _batching(table: Mapping[str, object], name: str) -> dict[str, dict[str, int | float]]:
    checked = {}
    for servable, values in table.items():
        try:
            checked[servable] = read_settings(_table(values, f"{name}.{servable}"))
        except BatchingError as exc:
            raise SettingsError(f"{name}.{servable}: {exc}") from None
    return checked
