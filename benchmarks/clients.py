"""One async client per path into a server: each sends the same pre-encoded request again.

Paths: `ms-grpc` (MindSpore Serving's Predict), `v2-grpc` (ModelInfer), `ms-rest`
(`POST /model/...`), `v2-rest` (`POST /v2/models/.../infer`, binary tensors) and `link` (msq's
broker link, no gateway). `open_client` returns a `PathClient` whose `call` is a load target.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import grpc

from msq.benchmarks import payloads
from msq.benchmarks.load import CallError
from msq.benchmarks.scenarios import InstanceValues
from msq.gateways.core.link import BrokerLink
from msq.gateways.rest.v2_codec import HEADER_LENGTH
from msq.proto import grpc_predict_v2_pb2 as v2_pb

PATHS = ("ms-grpc", "v2-grpc", "ms-rest", "v2-rest", "link")
#: Largest gRPC message either side accepts (a `large` request is 4 MiB plus framing).
MAX_GRPC_MESSAGE = 512 * 1024 * 1024
GRPC_OPTIONS = [
    ("grpc.max_send_message_length", MAX_GRPC_MESSAGE),
    ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE),
]
MS_PREDICT = "/mindspore.serving.proto.MSService/Predict"
V2_INFER = "/inference.GRPCInferenceService/ModelInfer"
V2_CONFIG = "/inference.GRPCInferenceService/ModelConfig"


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where a system under test listens; None for what it does not serve."""

    grpc: str | None = None
    rest: str | None = None
    broker: str | None = None
    #: The deadline the link gives requests (None: BrokerLink's default).
    link_timeout_s: float | None = None


@dataclass(slots=True)
class PathClient:
    """A load target (`call`) and how to release its connections (`close`)."""

    call: Callable[[], Awaitable[int]]
    close: Callable[[], Awaitable[None]]


def _grpc_status_kind(error: grpc.aio.AioRpcError) -> CallError:
    return CallError(f"grpc {error.code().name}", error.details() or "")


async def _grpc_client(
    address: str, rpc_name: str, body: bytes, check: Callable[[bytes], int]
) -> PathClient:
    channel = grpc.aio.insecure_channel(address, options=GRPC_OPTIONS)
    rpc = channel.unary_unary(rpc_name)

    async def call() -> int:
        try:
            reply = await rpc(body)
        except grpc.aio.AioRpcError as error:
            raise _grpc_status_kind(error) from None
        return check(reply)

    async def close() -> None:
        await channel.close()

    return PathClient(call, close)


async def _v2_grpc_batches(address: str, model: str) -> bool:
    """Whether the V2 model batches (its config's max_batch_size > 0)."""
    async with grpc.aio.insecure_channel(address, options=GRPC_OPTIONS) as channel:
        rpc = channel.unary_unary(
            V2_CONFIG,
            request_serializer=v2_pb.ModelConfigRequest.SerializeToString,
            response_deserializer=v2_pb.ModelConfigResponse.FromString,
        )
        response = await rpc(v2_pb.ModelConfigRequest(name=model))
    return int(response.config.max_batch_size) > 0


def _http_client(
    url: str, body: bytes, headers: dict[str, str], check: Callable[[int, bytes, str | None], int]
) -> PathClient:
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def call() -> int:
        try:
            async with session.post(url, data=body, headers=headers) as response:
                data = await response.read()
                length = response.headers.get(HEADER_LENGTH)
                return check(response.status, data, length)
        except aiohttp.ClientError as error:
            raise CallError(type(error).__name__, str(error)) from None

    async def close() -> None:
        await session.close()

    return PathClient(call, close)


async def _v2_rest_batches(base: str, model: str) -> bool:
    url = f"{base}/v2/models/{model}/config"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        config = json.loads(await response.read())
    return int(config.get("max_batch_size", 0)) > 0


def _link_client(
    address: str,
    timeout_s: float | None,
    servable: str,
    method: str,
    instances: list[InstanceValues],
) -> PathClient:
    link = (
        BrokerLink(address)
        if timeout_s is None
        else BrokerLink(address, default_timeout_s=timeout_s)
    )
    columns = payloads.link_columns(instances)

    async def call() -> int:
        return payloads.check_link_reply(await link.infer(servable, method, columns))

    async def close() -> None:
        link.close()

    return PathClient(call, close)


async def open_client(
    path: str,
    *,
    endpoints: Endpoints,
    servable: str,
    method: str,
    outputs: tuple[str, ...],
    instances: list[InstanceValues],
) -> PathClient:
    """A client sending `instances` as one request to `servable`'s `method` over `path`."""
    count = len(instances)
    v2_model = f"{servable}.{method}"
    if path == "ms-grpc" and endpoints.grpc:
        body = payloads.ms_grpc_request(servable, method, instances)
        return await _grpc_client(
            endpoints.grpc, MS_PREDICT, body, lambda data: payloads.check_ms_grpc_reply(data, count)
        )
    if path == "v2-grpc" and endpoints.grpc:
        tensors = payloads.v2_tensors(instances, await _v2_grpc_batches(endpoints.grpc, v2_model))
        body = payloads.v2_grpc_request(v2_model, tensors)
        return await _grpc_client(
            endpoints.grpc, V2_INFER, body, lambda data: payloads.check_v2_grpc_reply(data, count)
        )
    if path == "ms-rest" and endpoints.rest:
        return _http_client(
            f"{endpoints.rest}/model/{servable}:{method}",
            payloads.ms_rest_body(instances),
            {"Content-Type": "application/json"},
            lambda status, data, _: payloads.check_ms_rest_reply(status, data, count),
        )
    if path == "v2-rest" and endpoints.rest:
        tensors = payloads.v2_tensors(instances, await _v2_rest_batches(endpoints.rest, v2_model))
        body, header_length = payloads.v2_rest_body(list(outputs), tensors)
        return _http_client(
            f"{endpoints.rest}/v2/models/{v2_model}/infer",
            body,
            {HEADER_LENGTH: str(header_length)},
            lambda status, data, length: payloads.check_v2_rest_reply(status, data, length, count),
        )
    if path == "link" and endpoints.broker:
        return _link_client(endpoints.broker, endpoints.link_timeout_s, servable, method, instances)
    raise ValueError(f"path {path!r} is not served here ({endpoints})")
