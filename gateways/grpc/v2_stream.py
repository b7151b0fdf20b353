"""Triton's `ModelStreamInfer`: many V2 infer requests on one bidirectional gRPC stream.

Each request is answered like `ModelInfer` (the same infer flow) with one
`ModelStreamInferResponse`: its `infer_response`, or its `error_message` (with the request's
`id`, model name and version in `infer_response`, so the client can pair it). Requests run
concurrently and are answered as they finish, not in order; a failed request does not end the
stream. When the client closes its side, the stream ends after the last answer. At most
`MAX_IN_FLIGHT` requests of a stream are read and not yet answered; reading waits beyond that,
so a client that sends faster than it reads holds bounded memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc

from msq.gateways.core.errors import GatewayError
from msq.gateways.grpc.decoding import Undecodable, full_method_name, report
from msq.gateways.grpc.wire import SplitInferRequest
from msq.proto import grpc_predict_v2_pb2 as pb

log = logging.getLogger(__name__)

#: The full RPC name of the streaming infer method (its metrics and log label).
STREAM_METHOD = full_method_name(
    pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods_by_name["ModelStreamInfer"]
)

#: Requests of one stream read and not yet answered, at most.
MAX_IN_FLIGHT = 256

#: Answers one request (raises `GatewayError` when it fails).
Infer = Callable[[SplitInferRequest], Awaitable[pb.ModelInferResponse]]
#: Told each request's outcome and its time from arrival to answer in seconds.
Observer = Callable[[grpc.StatusCode, float], None]


def error_response(request: pb.ModelInferRequest, message: str) -> pb.ModelStreamInferResponse:
    """The stream's answer to a failed request."""
    return pb.ModelStreamInferResponse(
        error_message=message,
        infer_response=pb.ModelInferResponse(
            model_name=request.model_name, model_version=request.model_version, id=request.id
        ),
    )


async def answer(
    split: SplitInferRequest | Undecodable, infer: Infer
) -> tuple[pb.ModelStreamInferResponse, grpc.StatusCode]:
    """One request's answer on the stream, and its status (a message that was not a valid
    `ModelInferRequest` is answered alone with INVALID_ARGUMENT's message)."""
    if isinstance(split, Undecodable):
        report(STREAM_METHOD, split)
        return pb.ModelStreamInferResponse(error_message=split.message), (
            grpc.StatusCode.INVALID_ARGUMENT
        )
    try:
        response = pb.ModelStreamInferResponse(infer_response=await infer(split))
    except GatewayError as exc:
        return error_response(split.message, exc.message), exc.status.grpc_code
    except Exception as exc:  # a bug in one request must not end the others
        log.exception("stream request failed")
        message = f"internal error: {type(exc).__name__}: {exc}"
        return error_response(split.message, message), grpc.StatusCode.INTERNAL
    return response, grpc.StatusCode.OK


async def stream_responses(
    requests: AsyncIterator[SplitInferRequest | Undecodable],
    infer: Infer,
    observe: Observer | None = None,
) -> AsyncIterator[pb.ModelStreamInferResponse]:
    """The answers to a stream's requests, each as soon as it is ready."""
    answers: asyncio.Queue[pb.ModelStreamInferResponse | None] = asyncio.Queue()
    room = asyncio.Semaphore(MAX_IN_FLIGHT)
    running: set[asyncio.Task[None]] = set()

    async def run(split: SplitInferRequest | Undecodable) -> None:
        started = time.perf_counter()
        response, code = await answer(split, infer)
        if observe is not None:
            observe(code, time.perf_counter() - started)
        answers.put_nowait(response)

    async def read() -> None:
        try:
            async for split in requests:
                await room.acquire()
                task = asyncio.create_task(run(split))
                running.add(task)
                task.add_done_callback(running.discard)
            while running:
                await asyncio.wait(set(running))
        finally:
            answers.put_nowait(None)

    reader = asyncio.create_task(read())
    try:
        while (response := await answers.get()) is not None:
            yield response
            room.release()
        await reader  # a broken request stream ends the call with its error
    finally:
        for task in (reader, *running):
            task.cancel()
