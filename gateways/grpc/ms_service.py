"""MindSpore Serving's `MSService.Predict` served through the broker.

Wire and reply semantics are those of MindSpore Serving: the gRPC status is OK and errors
travel in `error_msg` — none when every instance succeeded; one when the whole request failed
(or every instance failed the same way), with no instances; otherwise one per instance (code 0
and an empty message for the good ones) beside one `Instance` per instance (empty for the
failed ones). A malformed instance fails alone; the others still run. The one departure: a call
with a gRPC deadline whose instances all time out ends with DEADLINE_EXCEEDED, as gRPC callers
expect. The deadline is the call's gRPC deadline, else the gateway's default; the request id
its `x-request-id` metadata (`msq.gateways.grpc.request_context`). Requests are
decoded by `msq.gateways.grpc.wire`: instances of one layout straight into columns, with their
answer written straight from the reply's columns when no instance failed
(`msq.gateways.grpc.ms_columns`); others instance by instance (large tensors are not copied),
their good instances stacked into columns and their answers split back by
`msq.gateways.core.instances`.
"""

from __future__ import annotations

import grpc

from msq import tracing
from msq.gateways.core.deadline import request_deadline
from msq.gateways.core.errors import error_status
from msq.gateways.core.instances import infer_columns, infer_instances
from msq.gateways.core.link import BrokerLink
from msq.gateways.grpc.decoding import unary_method
from msq.gateways.grpc.ms_columns import write_reply
from msq.gateways.grpc.request_context import call_request_id, metadata_value
from msq.gateways.grpc.wire import RawPredictRequest, RawTensor, parse_predict_request
from msq.proto import ms_service_pb2 as pb
from msq.proto.codec import CodecError, WireTensor
from msq.proto.columns import Outcomes
from msq.proto.deadline import DeadlineSource
from msq.proto.errors import ErrorKind, Failure, MSErrorCode
from msq.proto.messages import Instance, InstanceOutcome
from msq.proto.ms_tensors import MS_OF_DTYPE, fill_ms_tensor, wire_tensor

_SERVICE = pb.DESCRIPTOR.services_by_name["MSService"]
SERVICE = _SERVICE.full_name
NO_INSTANCES = "the request holds no instances"


def decode_instance(items: dict[str, RawTensor]) -> InstanceOutcome:
    """An instance of a request as wire tensors, or the failure that makes it invalid."""
    tensors: Instance = {}
    for name, raw in items.items():
        try:
            tensors[name] = wire_tensor(
                raw.dtype, raw.dims, raw.data, raw.bytes_val, raw.shared_memory
            )
        except CodecError as exc:
            return Failure(ErrorKind.INVALID_INPUT, f"input {name}: {exc}")
    return tensors


def decode_instances(request: RawPredictRequest) -> list[InstanceOutcome]:
    """Every instance of a request not read as columns, decoded (or its failure)."""
    return [decode_instance(items) for items in request.instances or request.legacy_instances]


def encode_reply(request: RawPredictRequest, outcomes: Outcomes) -> pb.PredictReply | bytes:
    """The answer to `request`: its servable spec and `outcomes` (already serialized when
    `write_reply` can write them)."""
    written = write_reply(request.name, request.method_name, request.version_number, outcomes)
    if written is not None:
        return written
    reply = pb.PredictReply()
    spec = reply.servable_spec  # echoes the request's
    spec.name, spec.method_name = request.name, request.method_name
    spec.version_number = request.version_number
    fill_reply(reply, outcomes)
    return reply


def _add_error(reply: pb.PredictReply, code: int, message: str) -> None:
    reply.error_msg.add(error_code=code, error_msg=message.encode("utf-8"))


def fill_reply(reply: pb.PredictReply, outcomes: Outcomes) -> None:
    """Write the outcomes into `reply` with MindSpore Serving's error conventions (the output
    columns are split here: each column's bytes are copied out once, then cut per instance)."""
    count, failures = outcomes.count, outcomes.failures
    if not count:
        _add_error(reply, MSErrorCode.INVALID_INPUTS, NO_INSTANCES)
        return
    if len(failures) == count and len({failure.failure for failure in failures}) == 1:
        failure = failures[0].failure
        _add_error(reply, error_status(failure.kind).ms_code, failure.message)
        return
    instances = [reply.instances.add() for _ in range(count)]
    failed = {failure.row: failure.failure for failure in failures}
    if failed:  # one error_msg per instance: code 0 and no message for the good ones
        for row in range(count):
            error = failed.get(row)
            code = MSErrorCode.SUCCESS if error is None else error_status(error.kind).ms_code
            _add_error(reply, code, "" if error is None else error.message)
    succeeded = [instance for row, instance in enumerate(instances) if row not in failed]
    start = 0
    for part in outcomes.columns:
        rows = succeeded[start : start + part.count]
        start += part.count
        for name, column in part.tensors.items():
            _fill_column(column, [instance.items[name] for instance in rows])


def _fill_column(column: WireTensor, items: list[pb.Tensor]) -> None:
    """Each row of an output column into its instance's `Tensor`."""
    if len(items) == 1:
        fill_ms_tensor(WireTensor(column.dtype, column.shape[1:], column.data), items[0])
        return
    code, dims = MS_OF_DTYPE[column.dtype], column.shape[1:]
    data = bytes(column.data)
    size = len(data) // len(items)
    for row, item in enumerate(items):
        item.dtype = code
        item.shape.dims.extend(dims)
        item.data = data[row * size : (row + 1) * size]


def serialize_reply(reply: pb.PredictReply | bytes) -> bytes:
    """The reply's bytes (`write_reply` gives them already serialized)."""
    return reply if isinstance(reply, bytes) else bytes(reply.SerializeToString())


def timeout_of_all(outcomes: Outcomes) -> Failure | None:
    """The first row's failure when every row failed with a timeout, else None."""
    failures = outcomes.failures
    if not failures or len(failures) != outcomes.count:
        return None
    timed_out = all(failure.failure.kind is ErrorKind.TIMEOUT for failure in failures)
    return failures[0].failure if timed_out else None


class MSService:
    """`mindspore.serving.proto.MSService` on top of the broker link."""

    def __init__(self, link: BrokerLink, default_timeout_s: float) -> None:
        self._link = link
        self._default_timeout_s = default_timeout_s

    def handler(self) -> grpc.GenericRpcHandler:
        """The service's handler for a grpc server, with the zero-copy request decoder
        (undecodable requests get INVALID_ARGUMENT, `msq.gateways.grpc.decoding`)."""
        predict = unary_method(
            _SERVICE.methods_by_name["Predict"],
            self.predict,
            parse_predict_request,
            serialize_reply,
        )
        return grpc.method_handlers_generic_handler(SERVICE, {"Predict": predict})

    async def predict(
        self, request: RawPredictRequest, context: grpc.aio.ServicerContext
    ) -> pb.PredictReply | bytes:
        """Run the requested method on every instance."""
        rid = call_request_id(context)
        traceparent = metadata_value(context, tracing.TRACEPARENT)
        with tracing.server_span("msq.gateway.receive", traceparent, rid):
            return await self._predict(request, context, rid)

    async def _predict(
        self, request: RawPredictRequest, context: grpc.aio.ServicerContext, rid: str
    ) -> pb.PredictReply | bytes:
        deadline = request_deadline(
            self._default_timeout_s, grpc_remaining_s=context.time_remaining()
        )
        if request.columns is not None:
            answer = await infer_columns(
                self._link,
                request.name,
                request.method_name,
                request.columns,
                version=request.version_number,
                deadline=deadline,
                rid=rid,
            )
        else:
            answer = await infer_instances(
                self._link,
                request.name,
                request.method_name,
                decode_instances(request),
                version=request.version_number,
                deadline=deadline,
                rid=rid,
            )
        timeout = timeout_of_all(answer)
        if timeout is not None and deadline.source is DeadlineSource.GRPC_DEADLINE:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, timeout.message)
        with tracing.span("msq.gateway.reply"):
            return encode_reply(request, answer)
