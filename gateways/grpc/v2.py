"""The Open Inference Protocol (KServe V2) `inference.GRPCInferenceService` over the broker.

Models, metadata, config, statistics and errors follow `msq.gateways.v2.models`; this module
only converts between protobuf messages and those. Inputs may come as `raw_input_contents`
(what tritonclient sends; BYTES in V2's length-prefixed layout; large ones are not copied, see
`msq.gateways.grpc.wire`) or as typed `contents` (not for FP16/BF16); outputs are always
returned as `raw_output_contents`. A request parameter `timeout` (int64, microseconds) caps
the call's deadline.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import TypeVar

import grpc
import numpy as np
from google.protobuf import json_format
from typing_extensions import Buffer, override

from msq.gateways.core.deadline import call_timeout_s
from msq.gateways.grpc.wire import SplitInferRequest, parse_infer_request
from msq.gateways.core.link import BrokerLink
from msq.gateways.v2.models import V2_TO_DTYPE, ModelCatalog, V2Error, server_metadata
from msq.gateways.v2.tensors import V2Tensor, check_outputs, pack_bytes, to_instances, to_outputs
from msq.proto import grpc_predict_v2_pb2 as pb
from msq.proto import grpc_predict_v2_pb2_grpc as pb_grpc
from msq.proto.errors import ErrorKind

T = TypeVar("T")

_SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
SERVICE = _SERVICE.full_name

#: The V2 extensions this service implements.
EXTENSIONS = ("model_configuration", "statistics")

#: The typed `InferTensorContents` field of each V2 datatype (FP16 and BF16 travel raw only).
CONTENTS_FIELDS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def request_tensors(split: SplitInferRequest) -> list[V2Tensor]:
    """The inputs of an infer request, from its raw or its typed contents."""
    request, raw = split.message, split.raw_inputs
    if raw and len(raw) != len(request.inputs):
        raise V2Error(
            ErrorKind.INVALID_INPUT,
            f"expected {len(request.inputs)} raw input contents, got {len(raw)}",
        )
    tensors = []
    for index, tensor in enumerate(request.inputs):
        if raw and tensor.HasField("contents"):
            raise V2Error(
                ErrorKind.INVALID_INPUT,
                f"input {tensor.name!r} has contents although raw_input_contents are given",
            )
        data = raw[index] if raw else typed_contents(tensor)
        tensors.append(V2Tensor(tensor.name, tensor.datatype, tuple(tensor.shape), data))
    return tensors


def typed_contents(tensor: pb.ModelInferRequest.InferInputTensor) -> Buffer | list[bytes]:
    """A tensor's typed contents as raw bytes (or BYTES elements)."""
    field = CONTENTS_FIELDS.get(tensor.datatype)
    if field is None:
        raise V2Error(
            ErrorKind.INVALID_INPUT,
            f"input {tensor.name!r}: datatype {tensor.datatype!r} must come in raw_input_contents",
        )
    values = getattr(tensor.contents, field)
    if tensor.datatype == "BYTES":
        return list(values)
    try:
        return np.array(list(values), dtype=V2_TO_DTYPE[tensor.datatype]).tobytes()
    except (OverflowError, ValueError) as exc:
        raise V2Error(ErrorKind.INVALID_INPUT, f"input {tensor.name!r}: {exc}") from None


def timeout_parameter_s(request: pb.ModelInferRequest) -> float | None:
    """The request's `timeout` parameter (microseconds) in seconds; None when absent or 0."""
    if "timeout" not in request.parameters:
        return None
    parameter = request.parameters["timeout"]
    kind = parameter.WhichOneof("parameter_choice")
    value = getattr(parameter, kind) if kind in ("int64_param", "uint64_param") else None
    if not isinstance(value, int) or value < 0:
        raise V2Error(ErrorKind.INVALID_INPUT, "parameter 'timeout' must be microseconds (int)")
    return value / 1e6 if value else None


def fill_outputs(response: pb.ModelInferResponse, outputs: Sequence[V2Tensor]) -> None:
    """Write the output tensors into `response` as raw contents."""
    for tensor in outputs:
        response.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        data = tensor.data
        response.raw_output_contents.append(
            pack_bytes(data) if isinstance(data, list) else bytes(data)
        )


class InferenceService(pb_grpc.GRPCInferenceServiceServicer):
    """`inference.GRPCInferenceService` on top of the broker link."""

    def __init__(self, link: BrokerLink, catalog: ModelCatalog) -> None:
        self._link = link
        self._catalog = catalog

    def handler(self) -> grpc.GenericRpcHandler:
        """The service's handler for a grpc server (ModelInfer with the zero-copy decoder)."""
        handlers = {}
        for method in _SERVICE.methods:
            request_type = getattr(pb, method.input_type.name)
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                getattr(self, method.name),
                request_deserializer=(
                    parse_infer_request if method.name == "ModelInfer" else request_type.FromString
                ),
                response_serializer=getattr(pb, method.output_type.name).SerializeToString,
            )
        return grpc.method_handlers_generic_handler(SERVICE, handlers)

    @override
    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerLiveResponse:
        """Live while the gateway answers."""
        return pb.ServerLiveResponse(live=True)

    @override
    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerReadyResponse:
        """Ready when the broker answers and some worker is ready."""
        return pb.ServerReadyResponse(ready=await self._catalog.server_ready())

    @override
    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelReadyResponse:
        """Ready when a worker serves the model (unknown models are not ready)."""
        ready = await self._catalog.model_ready(request.name, request.version)
        return pb.ModelReadyResponse(ready=ready)

    @override
    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerMetadataResponse:
        """Name, version and extensions of the server."""
        return json_format.ParseDict(server_metadata(EXTENSIONS), pb.ServerMetadataResponse())

    @override
    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelMetadataResponse:
        """Inputs, outputs and versions of a model."""
        model = await _answer(context, self._catalog.resolve(request.name, request.version))
        return json_format.ParseDict(model.metadata(), pb.ModelMetadataResponse())

    @override
    async def ModelConfig(
        self, request: pb.ModelConfigRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelConfigResponse:
        """The Triton-style configuration of a model."""
        model = await _answer(context, self._catalog.resolve(request.name, request.version))
        return json_format.ParseDict({"config": model.config()}, pb.ModelConfigResponse())

    @override
    async def ModelStatistics(
        self, request: pb.ModelStatisticsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelStatisticsResponse:
        """Statistics of one model, or of every model when no name is given."""
        stats = await _answer(context, self._catalog.statistics(request.name, request.version))
        return json_format.ParseDict({"model_stats": stats}, pb.ModelStatisticsResponse())

    @override
    async def ModelInfer(
        self, request: SplitInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        """Run a model on the request's inputs (one instance per batch row)."""
        return await _answer(context, self._infer(request, context))

    async def _infer(
        self, split: SplitInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        request = split.message
        timeout_s = call_timeout_s(context, timeout_parameter_s(request))
        model = await self._catalog.resolve(request.model_name, request.model_version)
        requested = [output.name for output in request.outputs]
        check_outputs(model, requested)
        instances = to_instances(model, request_tensors(split))
        reply = await self._link.infer(
            model.servable,
            model.method.name,
            instances,
            version=model.version,
            timeout_s=timeout_s,
        )
        if reply.error is not None:
            raise V2Error.of(reply.error)
        response = pb.ModelInferResponse(
            model_name=request.model_name,
            model_version=str(reply.version or model.version),
            id=request.id,
        )
        fill_outputs(response, to_outputs(model, reply.outcomes, requested))
        return response


async def _answer(context: grpc.aio.ServicerContext, call: Awaitable[T]) -> T:
    """The result of `call`; a `V2Error` ends the RPC with its status code instead."""
    try:
        return await call
    except V2Error as exc:
        await context.abort(exc.status.grpc_code, exc.message)
        raise  # context.abort raised already; this tells the type checker
