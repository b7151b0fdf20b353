"""The Open Inference Protocol (KServe V2) `inference.GRPCInferenceService` over the broker.

Models, readiness, documents, inference and errors are `msq.gateways.v2.service`'s; this
module only converts between protobuf messages and those. Inputs may come as
`raw_input_contents` (what tritonclient sends; BYTES in V2's length-prefixed layout; large ones
are not copied, see `msq.gateways.grpc.wire`) or as typed `contents` (not for FP16/BF16);
outputs are always returned as `raw_output_contents`. The call's deadline is the smaller of its
gRPC deadline and its `timeout` parameter (int64, microseconds), see
`msq.gateways.core.deadline`. Its request id is the `x-request-id` metadata, else the request's
`id` (`msq.gateways.grpc.request_context`); the response's `id` echoes the request's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Sequence

import grpc
import numpy as np
from google.protobuf import json_format
from typing_extensions import Buffer, override

from msq import tracing
from msq.gateways.core.deadline import request_deadline
from msq.gateways.core.errors import GatewayError
from msq.gateways.core.request_ids import request_id
from msq.gateways.grpc import v2_stream
from msq.gateways.grpc.aborts import answer, succeeds
from msq.gateways.grpc.decoding import Undecodable, stream_method, unary_method
from msq.gateways.grpc.repository import RepositoryRpcs
from msq.gateways.grpc.request_context import call_request_id, metadata_value
from msq.gateways.grpc.wire import SplitInferRequest, parse_infer_request
from msq.gateways.v2.datatypes import V2_TO_DTYPE
from msq.gateways.v2.documents import model_config, model_metadata, server_metadata
from msq.gateways.v2.service import InferCall, V2Service
from msq.gateways.v2.tensors import V2Tensor, pack_bytes
from msq.process import bind_log_fields
from msq.proto import grpc_predict_v2_pb2 as pb
from msq.proto.errors import ErrorKind

_SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
SERVICE = _SERVICE.full_name
STREAM_METHOD = v2_stream.STREAM_METHOD

#: The V2 extensions this service implements.
EXTENSIONS = ("model_configuration", "model_repository", "statistics")

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
        raise GatewayError(
            ErrorKind.INVALID_INPUT,
            f"expected {len(request.inputs)} raw input contents, got {len(raw)}",
        )
    tensors = []
    for index, tensor in enumerate(request.inputs):
        if raw and tensor.HasField("contents"):
            raise GatewayError(
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
        raise GatewayError(
            ErrorKind.INVALID_INPUT,
            f"input {tensor.name!r}: datatype {tensor.datatype!r} must come in raw_input_contents",
        )
    values = getattr(tensor.contents, field)
    if tensor.datatype == "BYTES":
        return list(values)
    try:
        return np.array(list(values), dtype=V2_TO_DTYPE[tensor.datatype]).tobytes()
    except (OverflowError, ValueError) as exc:
        raise GatewayError(ErrorKind.INVALID_INPUT, f"input {tensor.name!r}: {exc}") from None


def timeout_parameter(request: pb.ModelInferRequest) -> object:
    """The value of the request's `timeout` parameter (None: absent)."""
    if "timeout" not in request.parameters:
        return None
    parameter = request.parameters["timeout"]
    kind = parameter.WhichOneof("parameter_choice")
    return None if kind is None else getattr(parameter, kind)


def fill_outputs(response: pb.ModelInferResponse, outputs: Sequence[V2Tensor]) -> None:
    """Write the output tensors into `response` as raw contents."""
    for tensor in outputs:
        response.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        data = tensor.data
        response.raw_output_contents.append(
            pack_bytes(data) if isinstance(data, list) else bytes(data)
        )


class InferenceService(RepositoryRpcs):
    """`inference.GRPCInferenceService` on top of the shared V2 service (the repository RPCs
    are `msq.gateways.grpc.repository`'s)."""

    def __init__(
        self,
        v2: V2Service,
        default_timeout_s: float,
        observe_stream: v2_stream.Observer | None = None,
    ) -> None:
        """`observe_stream` is told the outcome of each request on a `ModelStreamInfer`
        stream (the gateway's metrics)."""
        self._v2 = v2
        self._default_timeout_s = default_timeout_s
        self._observe_stream = observe_stream

    def handler(self) -> grpc.GenericRpcHandler:
        """The service's handler for a grpc server (infer requests with the zero-copy decoder;
        undecodable requests get INVALID_ARGUMENT, `msq.gateways.grpc.decoding`)."""
        handlers = {}
        for method in _SERVICE.methods:
            request_type = getattr(pb, method.input_type.name)
            make = stream_method if method.client_streaming else unary_method
            handlers[method.name] = make(
                method,
                getattr(self, method.name),
                (
                    parse_infer_request
                    if request_type is pb.ModelInferRequest
                    else request_type.FromString
                ),
                getattr(pb, method.output_type.name).SerializeToString,
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
        return pb.ServerReadyResponse(ready=await succeeds(self._v2.check_server_ready()))

    @override
    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelReadyResponse:
        """Ready when a worker serves the model (unknown models are not ready)."""
        ready = await succeeds(self._v2.check_model_ready(request.name, request.version))
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
        model = await answer(context, self._v2.model(request.name, request.version))
        return json_format.ParseDict(model_metadata(model), pb.ModelMetadataResponse())

    @override
    async def ModelConfig(
        self, request: pb.ModelConfigRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelConfigResponse:
        """The Triton-style configuration of a model."""
        model = await answer(context, self._v2.model(request.name, request.version))
        return json_format.ParseDict({"config": model_config(model)}, pb.ModelConfigResponse())

    @override
    async def ModelStatistics(
        self, request: pb.ModelStatisticsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelStatisticsResponse:
        """Statistics of one model, or of every model when no name is given."""
        stats = await answer(context, self._v2.statistics(request.name, request.version))
        return json_format.ParseDict({"model_stats": stats}, pb.ModelStatisticsResponse())

    @override
    async def ModelInfer(
        self, request: SplitInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        """Run a model on the request's inputs (one instance per batch row)."""
        return await answer(context, self._infer(request, context))

    @override
    async def ModelStreamInfer(  # type: ignore[override]
        self,
        request_iterator: AsyncIterator[SplitInferRequest | Undecodable],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        """Run the stream's requests concurrently, each answered as `ModelInfer` answers it
        (see `msq.gateways.grpc.v2_stream`); a request's id is its `id`, else a new one."""

        def infer(split: SplitInferRequest) -> Awaitable[pb.ModelInferResponse]:
            rid = request_id(split.message.id)
            bind_log_fields(request_id=rid)  # in the request's own task
            return self._run(split, context, rid)

        responses = v2_stream.stream_responses(request_iterator, infer, self._observe_stream)
        async for response in responses:
            yield response

    async def _infer(
        self, split: SplitInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        return await self._run(split, context, call_request_id(context, split.message.id))

    async def _run(
        self, split: SplitInferRequest, context: grpc.aio.ServicerContext, rid: str
    ) -> pb.ModelInferResponse:
        traceparent = metadata_value(context, tracing.TRACEPARENT)
        with tracing.server_span("msq.gateway.receive", traceparent, rid):
            return await self._traced_infer(split, context, rid)

    async def _traced_infer(
        self, split: SplitInferRequest, context: grpc.aio.ServicerContext, rid: str
    ) -> pb.ModelInferResponse:
        request = split.message
        deadline = request_deadline(
            self._default_timeout_s,
            grpc_remaining_s=context.time_remaining(),
            timeout_parameter=timeout_parameter(request),
        )
        call = InferCall(
            request.model_name,
            request.model_version,
            request_tensors(split),
            [output.name for output in request.outputs],
            deadline,
            rid,
        )
        answer = await self._v2.infer(call)
        with tracing.span("msq.gateway.reply"):
            response = pb.ModelInferResponse(
                model_name=request.model_name, model_version=str(answer.version), id=request.id
            )
            fill_outputs(response, answer.outputs)
        return response
