"""Serialization of internal messages: a msgpack header frame plus one frame per large tensor.

Frame 0 is a msgpack map `{"v": PROTOCOL_VERSION, "c": command, ...fields}`. A tensor is the
list `[dtype, shape, data]`, where `data` is the raw bytes inline (small tensors) or the index
of a following frame (tensors of `FRAME_THRESHOLD` bytes and more, sent without copying).
Decoding never copies frame bytes: tensors keep a view of their frame. Nothing is pickled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgpack
from typing_extensions import Buffer

from msq.proto.batching import BatchPolicy
from msq.proto.codec import FRAME_THRESHOLD, WireTensor
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import (
    PROTOCOL_VERSION,
    Cancel,
    Disconnect,
    Heartbeat,
    Instance,
    InstanceOutcome,
    Job,
    Message,
    MethodSignature,
    Ready,
    Reply,
    Request,
    Result,
    ServableInfo,
    Status,
    StatusQuery,
    TensorSpec,
)


class WireError(ValueError):
    """A malformed message; `request_id` is set when the message named one."""

    def __init__(self, message: str, request_id: int | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


# ---------------------------------------------------------------------------------- encoding


class _Encoder:
    """Collects the tensor frames of one message while its header is built."""

    def __init__(self) -> None:
        self.frames: list[Buffer] = []

    def tensor(self, tensor: WireTensor) -> list[Any]:
        data = tensor.data
        if tensor.nbytes < FRAME_THRESHOLD:
            return [tensor.dtype, list(tensor.shape), bytes(data)]
        self.frames.append(data)
        return [tensor.dtype, list(tensor.shape), len(self.frames)]

    def instance(self, instance: Instance) -> dict[str, Any]:
        return {name: self.tensor(tensor) for name, tensor in instance.items()}

    def outcome(self, outcome: InstanceOutcome) -> Any:
        if isinstance(outcome, Failure):
            return _failure(outcome)
        return self.instance(outcome)


def _failure(failure: Failure) -> list[str]:
    return [failure.kind.value, failure.message]


def _spec(spec: TensorSpec) -> list[Any]:
    return [spec.name, spec.dtype, None if spec.shape is None else list(spec.shape)]


def _signature(method: MethodSignature) -> dict[str, Any]:
    policy = method.batching
    return {
        "name": method.name,
        "inputs": [_spec(spec) for spec in method.inputs],
        "outputs": [_spec(spec) for spec in method.outputs],
        "batching": [
            list(policy.sizes),
            policy.preferred_size,
            policy.max_queue_delay_ms,
            policy.max_queue_size,
        ],
    }


def _fields(message: Message, encoder: _Encoder) -> dict[str, Any]:
    match message:
        case Ready():
            return {
                "servable": message.servable,
                "version": message.version,
                "methods": [_signature(method) for method in message.methods],
                "capacity": message.capacity,
                "device": message.device,
                "pid": message.pid,
            }
        case Heartbeat():
            return {}
        case Disconnect():
            return {"reason": message.reason}
        case Request():
            return {
                "id": message.request_id,
                "servable": message.servable,
                "method": message.method,
                "version": message.version,
                "timeout_ms": message.timeout_ms,
                "instances": [encoder.instance(instance) for instance in message.instances],
            }
        case Reply():
            return {
                "id": message.request_id,
                "version": message.version,
                "outcomes": [encoder.outcome(outcome) for outcome in message.outcomes],
                "error": None if message.error is None else _failure(message.error),
            }
        case Cancel():
            return {"id": message.request_id}
        case Job():
            return {
                "id": message.job_id,
                "method": message.method,
                "batch_size": message.batch_size,
                "instances": [encoder.instance(instance) for instance in message.instances],
            }
        case Result():
            return {
                "id": message.job_id,
                "outcomes": [encoder.outcome(outcome) for outcome in message.outcomes],
                "compute_ms": message.compute_ms,
            }
        case StatusQuery():
            return {"id": message.request_id}
        case Status():
            return {
                "id": message.request_id,
                "servables": [
                    [
                        info.servable,
                        info.version,
                        [_signature(m) for m in info.methods],
                        info.workers,
                    ]
                    for info in message.servables
                ],
                "stats": message.stats,
            }
    raise TypeError(f"not a message: {message!r}")


_COMMANDS: dict[type, str] = {
    Ready: "ready",
    Heartbeat: "hb",
    Disconnect: "bye",
    Request: "req",
    Reply: "rep",
    Cancel: "cancel",
    Job: "job",
    Result: "res",
    StatusQuery: "status?",
    Status: "status",
}


def encode(message: Message) -> list[Buffer]:
    """Encode a message into frames: the header, then the large tensors' buffers."""
    encoder = _Encoder()
    header = {"v": PROTOCOL_VERSION, "c": _COMMANDS[type(message)], **_fields(message, encoder)}
    return [msgpack.packb(header, use_bin_type=True), *encoder.frames]


# ---------------------------------------------------------------------------------- decoding


class _Decoder:
    """Reads one message's header, resolving tensor frame indices against its frames."""

    def __init__(self, header: dict[str, Any], frames: Sequence[Buffer]) -> None:
        self.header = header
        self.frames = frames
        raw_id = header.get("id")
        self.request_id = (
            raw_id if isinstance(raw_id, int) and not isinstance(raw_id, bool) else None
        )

    def fail(self, message: str) -> WireError:
        return WireError(f"malformed {self.header.get('c')!r} message: {message}", self.request_id)

    def field(self, name: str, kind: type | tuple[type, ...]) -> Any:
        value = self.header.get(name)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(f"field {name!r} is missing or not {_kind_name(kind)}")
        return value

    def optional(self, name: str, kind: type | tuple[type, ...]) -> Any:
        return None if self.header.get(name) is None else self.field(name, kind)

    def tensor(self, raw: Any) -> WireTensor:
        if not (isinstance(raw, list) and len(raw) == 3):
            raise self.fail("a tensor must be [dtype, shape, data]")
        dtype, shape, data = raw
        if not isinstance(dtype, str) or not isinstance(shape, list):
            raise self.fail("a tensor's dtype must be a string and its shape a list")
        if not all(isinstance(dim, int) and not isinstance(dim, bool) for dim in shape):
            raise self.fail(f"a tensor's shape must hold integers, not {shape}")
        if isinstance(data, int) and not isinstance(data, bool):
            if not 1 <= data < len(self.frames):
                raise self.fail(f"tensor frame {data} does not exist")
            data = self.frames[data]
        elif not isinstance(data, bytes):
            raise self.fail("a tensor's data must be bytes or a frame index")
        return WireTensor(dtype, tuple(shape), data)

    def instance(self, raw: Any) -> Instance:
        if not isinstance(raw, dict) or not all(isinstance(name, str) for name in raw):
            raise self.fail("an instance must map names to tensors")
        return {name: self.tensor(tensor) for name, tensor in raw.items()}

    def instances(self, name: str) -> list[Instance]:
        return [self.instance(raw) for raw in self.field(name, list)]

    def failure(self, raw: Any) -> Failure:
        if not (isinstance(raw, list) and len(raw) == 2 and isinstance(raw[1], str)):
            raise self.fail("an error must be [kind, message]")
        try:
            return Failure(ErrorKind(raw[0]), raw[1])
        except ValueError:
            raise self.fail(f"unknown error kind {raw[0]!r}") from None

    def outcomes(self) -> list[InstanceOutcome]:
        return [
            self.failure(raw) if isinstance(raw, list) else self.instance(raw)
            for raw in self.field("outcomes", list)
        ]

    def spec(self, raw: Any) -> TensorSpec:
        if not (isinstance(raw, list) and len(raw) == 3 and isinstance(raw[0], str)):
            raise self.fail("a tensor spec must be [name, dtype, shape]")
        name, dtype, shape = raw
        return TensorSpec(name, dtype, None if shape is None else tuple(shape))

    def signature(self, raw: Any) -> MethodSignature:
        if not isinstance(raw, dict):
            raise self.fail("a method signature must be a map")
        try:
            sizes, preferred, delay, queue = raw["batching"]
            return MethodSignature(
                name=str(raw["name"]),
                inputs=tuple(self.spec(spec) for spec in raw["inputs"]),
                outputs=tuple(self.spec(spec) for spec in raw["outputs"]),
                batching=BatchPolicy(tuple(sizes), int(preferred), float(delay), int(queue)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise self.fail(f"bad method signature: {exc}") from None

    def servable_info(self, raw: Any) -> ServableInfo:
        if not (isinstance(raw, list) and len(raw) == 4 and isinstance(raw[2], list)):
            raise self.fail("a servable entry must be [name, version, methods, workers]")
        name, version, methods, workers = raw
        return ServableInfo(
            str(name), int(version), tuple(self.signature(m) for m in methods), int(workers)
        )


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _decode_ready(d: _Decoder) -> Ready:
    return Ready(
        servable=d.field("servable", str),
        version=d.field("version", int),
        methods=tuple(d.signature(raw) for raw in d.field("methods", list)),
        capacity=d.field("capacity", int),
        device=d.field("device", str),
        pid=d.field("pid", int),
    )


def _decode_request(d: _Decoder) -> Request:
    return Request(
        request_id=d.field("id", int),
        servable=d.field("servable", str),
        method=d.field("method", str),
        version=d.field("version", int),
        timeout_ms=d.optional("timeout_ms", (int, float)),
        instances=d.instances("instances"),
    )


def _decode_reply(d: _Decoder) -> Reply:
    error = d.header.get("error")
    return Reply(
        request_id=d.field("id", int),
        version=d.field("version", int),
        outcomes=d.outcomes(),
        error=None if error is None else d.failure(error),
    )


_DECODERS: dict[str, Callable[[_Decoder], Message]] = {
    "ready": _decode_ready,
    "hb": lambda d: Heartbeat(),
    "bye": lambda d: Disconnect(d.field("reason", str)),
    "req": _decode_request,
    "rep": _decode_reply,
    "cancel": lambda d: Cancel(d.field("id", int)),
    "job": lambda d: Job(
        job_id=d.field("id", int),
        method=d.field("method", str),
        batch_size=d.field("batch_size", int),
        instances=d.instances("instances"),
    ),
    "res": lambda d: Result(
        job_id=d.field("id", int),
        outcomes=d.outcomes(),
        compute_ms=float(d.field("compute_ms", (int, float))),
    ),
    "status?": lambda d: StatusQuery(d.field("id", int)),
    "status": lambda d: Status(
        request_id=d.field("id", int),
        servables=[d.servable_info(raw) for raw in d.field("servables", list)],
        stats=d.field("stats", dict),
    ),
}


def decode(frames: Sequence[Buffer]) -> Message:
    """Decode frames (header first) into a message; raise `WireError` if they are malformed.

    Tensor data stays a view of its frame: pass `zmq.Frame.buffer` memoryviews (or bytes).
    """
    if not frames:
        raise WireError("empty message")
    try:
        header = msgpack.unpackb(frames[0], raw=False, strict_map_key=True)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise WireError(f"message header is not valid msgpack: {exc}") from None
    if not isinstance(header, dict):
        raise WireError("message header is not a map")
    if header.get("v") != PROTOCOL_VERSION:
        raise WireError(
            f"protocol version {header.get('v')!r} is not supported (expected {PROTOCOL_VERSION})"
        )
    decoder = _Decoder(header, frames)
    command = header.get("c")
    decode_fields = _DECODERS.get(command) if isinstance(command, str) else None
    if decode_fields is None:
        raise WireError(f"unknown command {command!r}", decoder.request_id)
    return decode_fields(decoder)
