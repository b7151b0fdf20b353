"""Open Inference Protocol (KServe V2) logic shared by the gRPC and the REST gateway.

Nothing here knows a transport: the gateways turn requests into these calls and these results
(plain dicts shaped like the protocol's JSON) into their own messages.

Model naming
    A V2 model is one method of one servable, named ``{servable}.{method}``. The bare
    ``{servable}`` names its method when the servable has exactly one. A V2 version string is
    a servable version: ``""`` or ``"0"`` means the newest running version.

Batching
    A method whose `BatchPolicy.max_size` is above 1 *batches*: its V2 shapes carry a leading
    batch dimension (-1 in metadata, ``max_batch_size`` in the config, like Triton), and an
    infer request's dim 0 is split into that many msq instances, whose outputs are stacked
    again. A method that does not batch takes exactly one instance per request, shapes as is.

Errors
    Every failure is a `V2Error` carrying an `ErrorKind`; `ERROR_STATUS` maps each kind to one
    gRPC status code and one HTTP status (see the table for the chosen policy).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from msq.proto.codec import BYTES, STRING
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import MethodSignature, Status, TensorSpec

PLATFORM = "mindspore_mindir"
SERVER_NAME = "msq"
#: The datatype shown for an input or output whose dtype the servable does not declare.
ANY_DATATYPE = ""

# ------------------------------------------------------------------------------------ errors


@dataclass(frozen=True, slots=True)
class ErrorStatus:
    """How one kind of failure is reported on gRPC and on HTTP."""

    grpc_code: grpc.StatusCode
    http_status: int


#: Queue full as Triton and TF Serving answer it: "try again" (the default policy).
QUEUE_FULL_UNAVAILABLE = ErrorStatus(grpc.StatusCode.UNAVAILABLE, 503)
#: Queue full as rate limiters answer it (Ray Serve's 429); pass it to `error_status`.
QUEUE_FULL_TOO_MANY_REQUESTS = ErrorStatus(grpc.StatusCode.RESOURCE_EXHAUSTED, 429)

#: One status per failure kind. MODEL_ERROR (the servable's own code or model failed on an
#: instance) is INTERNAL/500, as Triton answers a failed model execution; TIMEOUT (the
#: request's deadline passed) is DEADLINE_EXCEEDED/504.
ERROR_STATUS: Mapping[ErrorKind, ErrorStatus] = {
    ErrorKind.INVALID_INPUT: ErrorStatus(grpc.StatusCode.INVALID_ARGUMENT, 400),
    ErrorKind.NOT_FOUND: ErrorStatus(grpc.StatusCode.NOT_FOUND, 404),
    ErrorKind.WORKER_UNAVAILABLE: ErrorStatus(grpc.StatusCode.UNAVAILABLE, 503),
    ErrorKind.QUEUE_FULL: QUEUE_FULL_UNAVAILABLE,
    ErrorKind.TIMEOUT: ErrorStatus(grpc.StatusCode.DEADLINE_EXCEEDED, 504),
    ErrorKind.MODEL_ERROR: ErrorStatus(grpc.StatusCode.INTERNAL, 500),
    ErrorKind.INTERNAL: ErrorStatus(grpc.StatusCode.INTERNAL, 500),
}


def error_status(kind: ErrorKind, queue_full: ErrorStatus = QUEUE_FULL_UNAVAILABLE) -> ErrorStatus:
    """The gRPC and HTTP status for a failure kind, with the chosen queue-full policy."""
    return queue_full if kind is ErrorKind.QUEUE_FULL else ERROR_STATUS[kind]


class V2Error(Exception):
    """A V2 call that failed: why (`kind`) and a message for the caller."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    @classmethod
    def of(cls, failure: Failure) -> V2Error:
        """The error for a failure reported by the broker."""
        return cls(failure.kind, failure.message)

    @property
    def status(self) -> ErrorStatus:
        """The default gRPC and HTTP status for this error."""
        return error_status(self.kind)


# --------------------------------------------------------------------------------- datatypes

#: V2 datatype -> msq dtype. BYTES is msq `bytes` (or `str` where the servable declares it).
V2_TO_DTYPE: Mapping[str, str] = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BYTES": BYTES,
}
DTYPE_TO_V2: Mapping[str, str] = {
    **{dtype: v2 for v2, dtype in V2_TO_DTYPE.items()},
    STRING: "BYTES",
}


def v2_datatype(dtype: str | None) -> str:
    """The V2 datatype of an msq dtype (`ANY_DATATYPE` when undeclared)."""
    return ANY_DATATYPE if dtype is None else DTYPE_TO_V2[dtype]


def msq_dtype(datatype: str, declared: str | None = None) -> str:
    """The msq dtype for a V2 datatype; BYTES becomes `str` where the servable declares `str`."""
    dtype = V2_TO_DTYPE.get(datatype)
    if dtype is None:
        raise V2Error(ErrorKind.INVALID_INPUT, f"datatype {datatype!r} is not supported")
    return STRING if dtype == BYTES and declared == STRING else dtype


def config_datatype(dtype: str | None) -> str:
    """The Triton model-config data type (``TYPE_FP32``, ``TYPE_STRING`` for BYTES, ...)."""
    if dtype is None:
        return "TYPE_INVALID"
    datatype = DTYPE_TO_V2[dtype]
    return "TYPE_STRING" if datatype == "BYTES" else f"TYPE_{datatype}"


# ------------------------------------------------------------------------------------ models


@dataclass(frozen=True, slots=True)
class V2Model:
    """A V2 model resolved against the running servables."""

    servable: str
    version: int  # the version a request runs on (the newest unless one was asked for)
    versions: tuple[int, ...]  # every running version that has the method, ascending
    method: MethodSignature
    workers: int

    @property
    def name(self) -> str:
        """The canonical V2 name, ``{servable}.{method}``."""
        return model_name(self.servable, self.method.name)

    @property
    def max_batch_size(self) -> int:
        """Triton's max_batch_size: the method's largest job, or 0 when it does not batch."""
        size = self.method.batching.max_size
        return size if size > 1 else 0

    def shape(self, spec: TensorSpec) -> list[int]:
        """A tensor's V2 shape: -1 for variable dims (and unknown rank), batch dim first."""
        dims = [-1] if spec.shape is None else list(spec.shape)
        return [-1, *dims] if self.max_batch_size else dims

    def metadata(self) -> dict[str, Any]:
        """The V2 model metadata."""
        return {
            "name": self.name,
            "versions": [str(version) for version in self.versions],
            "platform": PLATFORM,
            "inputs": [self._tensor_metadata(spec) for spec in self.method.inputs],
            "outputs": [self._tensor_metadata(spec) for spec in self.method.outputs],
        }

    def _tensor_metadata(self, spec: TensorSpec) -> dict[str, Any]:
        return {"name": spec.name, "datatype": v2_datatype(spec.dtype), "shape": self.shape(spec)}

    def config(self) -> dict[str, Any]:
        """The Triton-style model configuration (what perf_analyzer reads)."""
        config: dict[str, Any] = {
            "name": self.name,
            "platform": PLATFORM,
            "backend": "msq",
            "max_batch_size": self.max_batch_size,
            "input": [self._tensor_config(spec) for spec in self.method.inputs],
            "output": [self._tensor_config(spec) for spec in self.method.outputs],
        }
        if self.max_batch_size:
            policy = self.method.batching
            config["dynamic_batching"] = {
                "preferred_batch_size": [policy.preferred_size],
                "max_queue_delay_microseconds": round(policy.max_queue_delay_ms * 1000),
            }
        return config

    @staticmethod
    def _tensor_config(spec: TensorSpec) -> dict[str, Any]:
        dims = [-1] if spec.shape is None else list(spec.shape)
        return {"name": spec.name, "data_type": config_datatype(spec.dtype), "dims": dims}


def model_name(servable: str, method: str) -> str:
    """The V2 name of a servable method."""
    return f"{servable}.{method}"


def parse_version(version: str) -> int:
    """A V2 version string as a servable version (``""`` and ``"0"``: the newest)."""
    if not version:
        return 0
    if not version.isdecimal():
        raise V2Error(ErrorKind.INVALID_INPUT, f"model version {version!r} is not an integer")
    return int(version)


def resolve(status: Status, name: str, version: str = "") -> V2Model:
    """Find the model `name` (at `version`) among the servables of `status`."""
    wanted = parse_version(version)
    by_servable: dict[str, list[tuple[int, MethodSignature, int]]] = {}
    for info in status.servables:
        for method in info.methods:
            by_servable.setdefault(info.servable, []).append((info.version, method, info.workers))
    entries = by_servable.get(name)
    if entries is not None:
        methods = sorted({method.name for _, method, _ in entries})
        if len(methods) != 1:
            choices = ", ".join(model_name(name, method) for method in methods)
            raise V2Error(
                ErrorKind.NOT_FOUND,
                f"servable {name!r} has several methods: name the model one of {choices}",
            )
        servable, method_name = name, methods[0]
    else:
        servable, _, method_name = name.rpartition(".")
        entries = by_servable.get(servable)
        if not servable or entries is None:
            raise V2Error(ErrorKind.NOT_FOUND, f"model {name!r} is not available")
    matches = sorted(
        ((ver, method, workers) for ver, method, workers in entries if method.name == method_name),
        key=lambda entry: entry[0],
    )
    if not matches:
        raise V2Error(ErrorKind.NOT_FOUND, f"model {name!r}: method is not available")
    chosen = [entry for entry in matches if wanted in (0, entry[0])]
    if not chosen:
        raise V2Error(ErrorKind.NOT_FOUND, f"model {name!r} version {wanted} is not available")
    ver, method, workers = chosen[-1]
    return V2Model(servable, ver, tuple(entry[0] for entry in matches), method, workers)


def all_models(status: Status) -> list[V2Model]:
    """Every servable method of `status` as a V2 model at its newest version."""
    names = {model_name(info.servable, m.name) for info in status.servables for m in info.methods}
    return [resolve(status, name) for name in sorted(names)]


def server_metadata(extensions: Sequence[str]) -> dict[str, Any]:
    """The V2 server metadata, listing the protocol `extensions` the gateway serves."""
    try:
        version = importlib.metadata.version(SERVER_NAME)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return {"name": SERVER_NAME, "version": version, "extensions": list(extensions)}


# --------------------------------------------------------------------------------- statistics


def _duration(count: object, milliseconds: object) -> dict[str, int]:
    count = count if isinstance(count, int) else 0
    ms = milliseconds if isinstance(milliseconds, (int, float)) else 0.0
    return {"count": count, "ns": round(ms * 1_000_000)}


def route_statistics(name: str, route: Mapping[str, Any]) -> dict[str, Any]:
    """Triton's `model_stats` entry for one broker statistics route (see `msq.broker.stats`).

    Counts are per instance (Triton's inference) and per job (Triton's execution); msq does not
    time whole requests, so `success`/`fail` carry counts with ns 0.
    """
    queue = route.get("queue_delay_ms") or {}
    compute = route.get("compute_ms") or {}
    job_sizes = route.get("job_sizes") or {}
    return {
        "name": name,
        "version": str(route.get("version", 0)),
        "last_inference": 0,
        "inference_count": int(route.get("instances_succeeded", 0)),
        "execution_count": int(route.get("executions", 0)),
        "inference_stats": {
            "success": _duration(route.get("instances_succeeded", 0), 0),
            "fail": _duration(route.get("instances_failed", 0), 0),
            "queue": _duration(queue.get("count", 0), queue.get("sum", 0.0)),
            "compute_input": _duration(0, 0),
            "compute_infer": _duration(compute.get("count", 0), compute.get("sum", 0.0)),
            "compute_output": _duration(0, 0),
        },
        "batch_stats": [
            {"batch_size": int(size), "compute_infer": _duration(count, 0)}
            for size, count in sorted(job_sizes.items(), key=lambda item: int(item[0]))
        ],
    }


def statistics(status: Status, name: str = "", version: str = "") -> list[dict[str, Any]]:
    """Triton's `model_stats` list: every route of model `name` (all models when empty)."""
    routes = status.stats.get("routes")
    routes = routes if isinstance(routes, list) else []
    if name:
        model = resolve(status, name, version)
        wanted = parse_version(version)
        return [
            route_statistics(model.name, route)
            for route in routes
            if route.get("servable") == model.servable
            and route.get("method") == model.method.name
            and wanted in (0, route.get("version"))
        ]
    return [
        route_statistics(model_name(route.get("servable", ""), route.get("method", "")), route)
        for route in routes
    ]


# ------------------------------------------------------------------------------------ catalog


class ModelCatalog:
    """The broker's catalog of servables, cached for `ttl_s` (one query at a time).

    `query` is `BrokerLink.status` (or any coroutine function answering a `Status`, or None
    when the broker does not answer). A name not found in the cache refreshes it, at most
    once every `min_refresh_s`, so a worker that just registered is found at once.
    """

    def __init__(
        self,
        query: Callable[[], Awaitable[Status | None]],
        *,
        ttl_s: float = 1.0,
        min_refresh_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._query = query
        self._ttl_s = ttl_s
        self._min_refresh_s = min_refresh_s
        self._clock = clock
        self._status: Status | None = None
        self._fetched_at = -math.inf
        self._pending: asyncio.Future[Status | None] | None = None

    async def status(self, *, max_age_s: float | None = None) -> Status | None:
        """The broker's status, at most `max_age_s` old (default: the cache's ttl)."""
        max_age = self._ttl_s if max_age_s is None else max_age_s
        if self._clock() - self._fetched_at < max_age:
            return self._status
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._fetch())
        return await asyncio.shield(self._pending)

    async def _fetch(self) -> Status | None:
        try:
            status = await self._query()
        finally:
            self._pending = None
        self._status, self._fetched_at = status, self._clock()
        return status

    async def _require_status(self, max_age_s: float | None = None) -> Status:
        status = await self.status(max_age_s=max_age_s)
        if status is None:
            raise V2Error(ErrorKind.WORKER_UNAVAILABLE, "the broker does not answer")
        return status

    async def resolve(self, name: str, version: str = "") -> V2Model:
        """The model `name` at `version`; raise `V2Error` (NOT_FOUND, ...) when there is none."""
        try:
            return resolve(await self._require_status(), name, version)
        except V2Error as exc:
            if exc.kind is not ErrorKind.NOT_FOUND:
                raise
        return resolve(await self._require_status(self._min_refresh_s), name, version)

    async def model_ready(self, name: str, version: str = "") -> bool:
        """Whether a worker serves the model now."""
        try:
            return (await self.resolve(name, version)).workers > 0
        except V2Error:
            return False

    async def server_ready(self) -> bool:
        """Whether the broker answers and at least one worker serves something."""
        status = await self.status()
        return status is not None and any(info.workers > 0 for info in status.servables)

    async def models(self) -> list[V2Model]:
        """Every model served now."""
        return all_models(await self._require_status())

    async def statistics(self, name: str = "", version: str = "") -> list[dict[str, Any]]:
        """Fresh statistics of model `name` (every model when empty)."""
        return statistics(await self._require_status(max_age_s=0.0), name, version)
