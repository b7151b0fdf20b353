"""MindSpore Serving's `MSService.Predict` served through the broker.

Wire and reply semantics are those of MindSpore Serving: the gRPC status is OK and errors
travel in `error_msg` — none when every instance succeeded; one when the whole request failed
(or every instance failed the same way), with no instances; otherwise one per instance (code 0
and an empty message for the good ones) beside one `Instance` per instance (empty for the
failed ones). A malformed instance fails alone; the others still run. The one departure: a call
with a gRPC deadline whose instances all time out ends with DEADLINE_EXCEEDED, as gRPC callers
expect. Requests are decoded by `msq.gateways.grpc.wire` (large tensors are not copied).
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from msq.gateways.core.deadline import call_timeout_s
from msq.gateways.grpc.wire import RawPredictRequest, RawTensor, parse_predict_request
from msq.gateways.core.link import BrokerLink
from msq.proto import ms_service_pb2 as pb
from msq.proto.codec import CodecError
from msq.proto.errors import ErrorKind, Failure, MSErrorCode
from msq.proto.messages import Instance, InstanceOutcome, Reply
from msq.proto.ms_tensors import fill_ms_tensor, wire_tensor

SERVICE = pb.DESCRIPTOR.services_by_name["MSService"].full_name
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


def merge_outcomes(
    decoded: Sequence[InstanceOutcome], reply: Reply | None
) -> list[InstanceOutcome]:
    """Every instance's outcome: its decoding failure, else the broker's answer, in order."""
    answers = iter(() if reply is None else reply.outcomes)
    outcomes: list[InstanceOutcome] = []
    for outcome in decoded:
        if isinstance(outcome, Failure):
            outcomes.append(outcome)
        elif reply is not None and reply.error is not None:
            outcomes.append(reply.error)
        else:
            answer = next(answers, None)
            outcomes.append(
                answer
                if answer is not None
                else Failure(ErrorKind.INTERNAL, "the broker returned too few outcomes")
            )
    return outcomes


def _add_error(reply: pb.PredictReply, code: int, message: str) -> None:
    reply.error_msg.add(error_code=code, error_msg=message.encode("utf-8"))


def fill_reply(reply: pb.PredictReply, outcomes: Sequence[InstanceOutcome]) -> None:
    """Write the outcomes into `reply` with MindSpore Serving's error conventions."""
    failures = [outcome for outcome in outcomes if isinstance(outcome, Failure)]
    if not outcomes:
        _add_error(reply, MSErrorCode.INVALID_INPUTS, NO_INSTANCES)
        return
    if len(failures) == len(outcomes) and len(set(failures)) == 1:
        _add_error(reply, failures[0].ms_code, failures[0].message)
        return
    for outcome in outcomes:
        instance = reply.instances.add()
        if isinstance(outcome, Failure):
            if failures:
                _add_error(reply, outcome.ms_code, outcome.message)
            continue
        if failures:
            _add_error(reply, MSErrorCode.SUCCESS, "")
        for name, tensor in outcome.items():
            fill_ms_tensor(tensor, instance.items[name])


def timeout_of_all(outcomes: Sequence[InstanceOutcome]) -> Failure | None:
    """The first outcome's failure when every outcome is a timeout, else None."""
    timeouts = [o for o in outcomes if isinstance(o, Failure) and o.kind is ErrorKind.TIMEOUT]
    return timeouts[0] if timeouts and len(timeouts) == len(outcomes) else None


class MSService:
    """`mindspore.serving.proto.MSService` on top of the broker link."""

    def __init__(self, link: BrokerLink) -> None:
        self._link = link

    def handler(self) -> grpc.GenericRpcHandler:
        """The service's handler for a grpc server, with the zero-copy request decoder."""
        predict = grpc.unary_unary_rpc_method_handler(
            self.predict,
            request_deserializer=parse_predict_request,
            response_serializer=pb.PredictReply.SerializeToString,
        )
        return grpc.method_handlers_generic_handler(SERVICE, {"Predict": predict})

    async def predict(
        self, request: RawPredictRequest, context: grpc.aio.ServicerContext
    ) -> pb.PredictReply:
        """Run the requested method on every instance."""
        raw_instances = request.instances or request.legacy_instances
        decoded = [decode_instance(instance) for instance in raw_instances]
        valid = [outcome for outcome in decoded if not isinstance(outcome, Failure)]
        timeout_s = call_timeout_s(context)
        answer = None
        if valid:
            answer = await self._link.infer(
                request.name,
                request.method_name,
                valid,
                version=request.version_number,
                timeout_s=timeout_s,
            )
        outcomes = merge_outcomes(decoded, answer)
        timeout = timeout_of_all(outcomes)
        if timeout_s is not None and timeout is not None:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, timeout.message)
        reply = pb.PredictReply()
        spec = reply.servable_spec  # echoes the request's
        spec.name, spec.method_name = request.name, request.method_name
        spec.version_number = request.version_number
        fill_reply(reply, outcomes)
        return reply
