"""The stream logic of `ModelStreamInfer` (pure asyncio, no sockets): answers as they finish,
errors alone, and a bounded number of requests in flight."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from msq.gateways.core.errors import GatewayError
from msq.gateways.grpc.v2_stream import MAX_IN_FLIGHT, stream_responses
from msq.gateways.grpc.wire import SplitInferRequest
from msq.proto import grpc_predict_v2_pb2 as pb
from msq.proto.errors import ErrorKind


async def requests(count: int) -> AsyncIterator[SplitInferRequest]:
    for number in range(count):
        yield SplitInferRequest(pb.ModelInferRequest(model_name="m", id=str(number)), [])


def test_reading_stops_at_the_in_flight_bound_until_answers_are_taken() -> None:
    total = MAX_IN_FLIGHT + 10
    started: list[str] = []
    release = asyncio.Event()

    async def infer(split: SplitInferRequest) -> pb.ModelInferResponse:
        started.append(split.message.id)
        await release.wait()
        return pb.ModelInferResponse(id=split.message.id)

    async def run() -> list[str]:
        stream = stream_responses(requests(total), infer)
        first = asyncio.ensure_future(anext(stream))
        while len(started) < MAX_IN_FLIGHT:
            await asyncio.sleep(0)
        for _ in range(100):  # the reader waits for room: nothing more starts
            await asyncio.sleep(0)
        assert len(started) == MAX_IN_FLIGHT
        release.set()
        answered = [(await first).infer_response.id]
        answered += [response.infer_response.id async for response in stream]
        return answered

    answered = asyncio.run(run())
    assert sorted(answered, key=int) == [str(number) for number in range(total)]
    assert len(started) == total


def test_errors_are_answered_alone_with_their_status() -> None:
    observed: list[grpc.StatusCode] = []

    async def infer(split: SplitInferRequest) -> pb.ModelInferResponse:
        number = int(split.message.id)
        if number == 1:
            raise GatewayError(ErrorKind.INVALID_INPUT, "bad input")
        if number == 2:
            raise KeyError("a bug")
        await asyncio.sleep(0)  # answered after the failures, although sent first
        return pb.ModelInferResponse(id=split.message.id)

    async def run() -> list[pb.ModelStreamInferResponse]:
        stream = stream_responses(requests(3), infer, lambda code, _: observed.append(code))
        return [response async for response in stream]

    responses = asyncio.run(run())
    assert [(r.infer_response.id, r.error_message) for r in responses] == [
        ("1", "bad input"),
        ("2", "internal error: KeyError: 'a bug'"),
        ("0", ""),
    ]
    assert [r.infer_response.model_name for r in responses[:2]] == ["m", "m"]  # the request's
    assert observed == [
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.OK,
    ]
