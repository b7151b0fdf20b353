"""The gRPC protocol floor: a bare `grpc.aio` server answering MindSpore Serving's Predict by
running a scenario's work in-process (no broker, no batching across requests).

    python -m msq.benchmarks.bare_grpc --scenario tiny --port 5500

Prints "bare-grpc ready" on stderr once serving.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import grpc

from msq.benchmarks.clients import GRPC_OPTIONS
from msq.benchmarks.compute import Compute, load_compute
from msq.benchmarks.payloads import fill_ms_tensor, ms_tensor_value
from msq.benchmarks.scenarios import DEFAULT_THREADS, SCENARIOS
from msq.proto import ms_service_pb2 as pb

READY_LINE = "bare-grpc ready"


def predict_handler(compute: Compute) -> grpc.RpcMethodHandler:
    """A unary handler: serialized PredictRequest in, serialized PredictReply out."""

    async def predict(data: bytes, context: grpc.aio.ServicerContext) -> bytes:
        request = pb.PredictRequest.FromString(data)
        reply = pb.PredictReply()
        reply.servable_spec.CopyFrom(request.servable_spec)
        instances = [
            {name: ms_tensor_value(tensor) for name, tensor in instance.items.items()}
            for instance in request.instances
        ]
        for outputs in compute(instances):
            instance = reply.instances.add()
            for name, value in outputs.items():
                fill_ms_tensor(instance.items[name], value)
        return bytes(reply.SerializeToString())

    return grpc.unary_unary_rpc_method_handler(predict)


async def serve(scenario: str, port: int, threads: int) -> None:
    """Serve until cancelled."""
    compute = load_compute(scenario, threads)
    server = grpc.aio.server(options=GRPC_OPTIONS)
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "mindspore.serving.proto.MSService", {"Predict": predict_handler(compute)}
            ),
        )
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(READY_LINE, file=sys.stderr, flush=True)
    await server.wait_for_termination()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.scenario, args.port, args.threads))


if __name__ == "__main__":
    main()
