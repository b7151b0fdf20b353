"""Requests with known answers, one client per protocol, each request with a deadline.

The chaos and soak tools call `add.add_common` (y = x1 + x2 on float32 [2, 2], from
`examples/servables`) through the four gateway paths: `ms-grpc` (MindSpore Serving `Predict`),
`v2-grpc` (`ModelInfer`), `ms-rest` (`POST /model/add:add_common`) and `v2-rest`
(`POST /v2/models/add.add_common/infer`, binary tensors), two instances a request. Each
client cycles through a seeded pool of distinct requests and compares every answer with x1 + x2,
so an answer given to the wrong request shows as `wrong`. The deadline travels the protocol's
way (gRPC deadline; `X-MSQ-Timeout-Ms`); a REST client waits `REST_GRACE_S` past it, so that a
late answer can be seen (a gRPC client gives up at the deadline: DEADLINE_EXCEEDED).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import grpc
import grpc.aio
import numpy as np
from google.protobuf.message import DecodeError

from msq.benchmarks import payloads
from msq.benchmarks.clients import MS_PREDICT, V2_INFER
from msq.benchmarks.scenarios import InstanceValues
from msq.benchmarks.tally import Answer, Failed, Outcome, classify, message_class
from msq.gateways.core.deadline import TIMEOUT_HEADER
from msq.gateways.rest.v2_codec import HEADER_LENGTH
from msq.proto import grpc_predict_v2_pb2 as v2_pb
from msq.proto import ms_service_pb2 as ms_pb
from msq.proto.errors import MSErrorCode

PATHS = ("ms-grpc", "v2-grpc", "ms-rest", "v2-rest")
SERVABLE, METHOD, OUTPUT = "add", "add_common", "y"
V2_MODEL = f"{SERVABLE}.{METHOD}"
#: Distinct requests each client cycles through.
POOL_SIZE = 32
#: Instances in one request (V2: a batch of two).
INSTANCES = 2
#: How long past its deadline a REST client waits for an answer.
REST_GRACE_S = 5.0
#: What reading an answer that is not the protocol's reply raises.
UNREADABLE = (ValueError, KeyError, TypeError, DecodeError)


@dataclass(frozen=True, slots=True)
class Known:
    """One request body and the `y` of each of its instances."""

    body: bytes
    expected: list[np.ndarray]
    headers: dict[str, str]  # what this body needs besides the deadline


def known_requests(path: str, seed: int, count: int = POOL_SIZE) -> list[Known]:
    """`count` distinct requests for `path` with their answers, the same for the same seed."""
    rng = np.random.default_rng([seed, PATHS.index(path)])
    pool = []
    for _ in range(count):
        instances: list[InstanceValues] = [
            {name: rng.standard_normal((2, 2)).astype(np.float32) for name in ("x1", "x2")}
            for _ in range(INSTANCES)
        ]
        expected = [np.add(i["x1"], i["x2"]) for i in instances]  # type: ignore[arg-type]
        body, headers = _body(path, instances)
        pool.append(Known(body, expected, headers))
    return pool


def _body(path: str, instances: list[InstanceValues]) -> tuple[bytes, dict[str, str]]:
    if path == "ms-grpc":
        return payloads.ms_grpc_request(SERVABLE, METHOD, instances), {}
    if path == "ms-rest":
        return payloads.ms_rest_body(instances), {"Content-Type": "application/json"}
    tensors = payloads.v2_tensors(instances, batched=True)
    if path == "v2-grpc":
        return payloads.v2_grpc_request(V2_MODEL, tensors), {}
    body, header_length = payloads.v2_rest_body([OUTPUT], tensors)
    return body, {HEADER_LENGTH: str(header_length)}


# ----------------------------------------------------------------------- reading the answers


def _ms_answer(values: list[np.ndarray | None], errors: list[tuple[int, str]]) -> Answer:
    """A MindSpore Serving answer: the instances' values, or the first error."""
    for code, text in errors:
        if code != 0 or text:
            name = MSErrorCode(code).name if code in set(MSErrorCode) else f"code {code}"
            return Failed(f"ms {name}: {message_class(text)}")
    return values


def read_ms_grpc(data: bytes) -> Answer:
    """The instances' `y` of a serialized `PredictReply`, or its first error."""
    reply = ms_pb.PredictReply.FromString(data)
    errors = [(e.error_code, e.error_msg.decode("utf-8", "replace")) for e in reply.error_msg]
    values = [
        np.asarray(payloads.ms_tensor_value(i.items[OUTPUT])) if OUTPUT in i.items else None
        for i in reply.instances
    ]
    return _ms_answer(values, errors or ([] if values else [(1, "empty reply")]))


def read_v2_grpc(data: bytes) -> Answer:
    """The `y` rows of a serialized `ModelInferResponse` (errors are gRPC statuses)."""
    response = v2_pb.ModelInferResponse.FromString(data)
    if not response.raw_output_contents:
        return Failed("v2 no outputs")
    return list(np.frombuffer(response.raw_output_contents[0], np.float32).reshape(-1, 2, 2))


def _json(status: int, body: bytes) -> Any:
    """A JSON reply body; a `Failed` of the HTTP status when it is not JSON (e.g. a proxy's)."""
    try:
        return json.loads(body)
    except ValueError:
        return Failed(f"http {status}: not JSON")


def read_ms_rest(status: int, body: bytes, headers: Any) -> Answer:
    """The instances' `y` of a MindSpore Serving REST reply, or its first error."""
    document = _json(status, body)
    if isinstance(document, Failed):
        return document
    if "error_msg" in document:
        return Failed(f"http {status} error_msg: {message_class(str(document['error_msg']))}")
    errors = [
        (1, str(i["error_msg"])) if "error_msg" in i else (0, "") for i in document["instances"]
    ]
    values = [
        None if OUTPUT not in i else np.asarray(i[OUTPUT], np.float32)
        for i in document["instances"]
    ]
    answer = _ms_answer(values, errors)
    return Failed(f"http {status} {answer.kind}") if isinstance(answer, Failed) else answer


def read_v2_rest(status: int, body: bytes, headers: Any) -> Answer:
    """The `y` rows of a V2 REST binary reply, or its error."""
    length = headers.get(HEADER_LENGTH)
    document = _json(status, body if length is None else body[: int(length)])
    if isinstance(document, Failed):
        return document
    if status != 200 or "outputs" not in document:
        return Failed(f"http {status}: {message_class(str(document.get('error', document)))}")
    return list(np.frombuffer(body[int(length) :], np.float32).reshape(-1, 2, 2))


# ----------------------------------------------------------------------------- the clients


@dataclass(slots=True)
class Probe:
    """A client of one path: `send()` makes the next request and returns its `Outcome`."""

    path: str
    send: Callable[[], Awaitable[Outcome]]
    close: Callable[[], Awaitable[None]]


def _cycle(pool: list[Known]) -> Callable[[], Known]:
    index = -1

    def take() -> Known:
        nonlocal index
        index = (index + 1) % len(pool)
        return pool[index]

    return take


def grpc_probe(path: str, address: str, deadline_s: float, seed: int) -> Probe:
    """A `ms-grpc` or `v2-grpc` client of the gateway at HOST:PORT `address`."""
    channel = grpc.aio.insecure_channel(address)
    rpc = channel.unary_unary(MS_PREDICT if path == "ms-grpc" else V2_INFER)
    read = read_ms_grpc if path == "ms-grpc" else read_v2_grpc
    take = _cycle(known_requests(path, seed))

    async def send() -> Outcome:
        known, started = take(), time.monotonic()
        try:
            answer: Answer = read(await rpc(known.body, timeout=deadline_s))
        except grpc.aio.AioRpcError as error:
            answer = Failed(f"grpc {error.code().name}: {message_class(error.details() or '')}")
        except UNREADABLE as error:
            answer = Failed(f"unreadable answer: {type(error).__name__}")
        return classify(
            path, started, time.monotonic(), answer, deadline_s=deadline_s, expected=known.expected
        )

    return Probe(path, send, channel.close)


def rest_probe(path: str, base_url: str, deadline_s: float, seed: int) -> Probe:
    """A `ms-rest` or `v2-rest` client of the gateway at `base_url` (http://HOST:PORT)."""
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        timeout=aiohttp.ClientTimeout(total=deadline_s + REST_GRACE_S),
    )
    if path == "ms-rest":
        url, read = f"{base_url}/model/{SERVABLE}:{METHOD}", read_ms_rest
    else:
        url, read = f"{base_url}/v2/models/{V2_MODEL}/infer", read_v2_rest
    deadline_header = {TIMEOUT_HEADER: str(round(deadline_s * 1000))}
    take = _cycle(known_requests(path, seed))

    async def send() -> Outcome:
        known, started = take(), time.monotonic()
        headers = {**deadline_header, **known.headers}
        try:
            async with session.post(url, data=known.body, headers=headers) as response:
                answer = read(response.status, await response.read(), response.headers)
        except TimeoutError:
            answer = Failed("no answer (client timeout)")
        except aiohttp.ClientError as error:
            answer = Failed(f"{type(error).__name__}")
        except UNREADABLE as error:
            answer = Failed(f"unreadable answer: {type(error).__name__}")
        return classify(
            path, started, time.monotonic(), answer, deadline_s=deadline_s, expected=known.expected
        )

    return Probe(path, send, session.close)


def open_probe(
    path: str, *, grpc_address: str, rest_url: str, deadline_s: float, seed: int
) -> Probe:
    """The client of `path` (one of `PATHS`)."""
    if path in ("ms-grpc", "v2-grpc"):
        return grpc_probe(path, grpc_address, deadline_s, seed)
    if path in ("ms-rest", "v2-rest"):
        return rest_probe(path, rest_url, deadline_s, seed)
    raise ValueError(f"unknown path {path!r}; choose from {', '.join(PATHS)}")
