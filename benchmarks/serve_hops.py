"""`python -m msq.benchmarks.serve_hops`: what `msq serve`'s transport and gRPC gateway
processes cost on this host.

    python -m msq.benchmarks.serve_hops hop                      # ZeroMQ round trips, ipc vs tcp
    python -m msq.benchmarks.serve_hops serve --transport tcp --grpc-workers 2 --concurrency 32

`hop` sends `--bytes` messages (1 KiB) from a `transport.dealer` to an echoing
`transport.router` (msq's own socket options), one at a time, over ipc:// and tcp://, and
prints the round trip's p50 and p99. `serve` starts `msq serve examples/servables --servable
add --no-rest` with the given `--broker-transport` and `--grpc-workers`, then times MSService
Predict calls: one in flight (p50, p99), and `--concurrency` in flight over as many
connections for `--duration` seconds (calls per second).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import grpc.aio
import numpy as np
import zmq

from msq.benchmarks.procs import free_port
from msq.benchmarks.scenarios import EXAMPLE_SERVABLES
from msq.proto import ms_service_pb2 as ms_pb
from msq.proto import ms_service_pb2_grpc as pb_grpc
from msq.proto import transport

#: A channel of its own per connection, so that connections spread over gateway processes.
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


def percentiles(seconds: list[float]) -> str:
    """p50 and p99 of `seconds`, in µs."""
    p50, p99 = np.percentile(np.array(seconds) * 1e6, [50, 99])
    return f"p50 {p50:.1f} µs, p99 {p99:.1f} µs"


def hop(endpoint: str, count: int, size: int) -> list[float]:
    """`count` round trips of a `size`-byte message from a DEALER to an echoing ROUTER."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    router = transport.router(context, endpoint)
    dealer = transport.dealer(context, router.getsockopt_string(zmq.LAST_ENDPOINT))

    def echo() -> None:
        for _ in range(count):
            router.send_multipart(router.recv_multipart(copy=False), copy=False)

    thread = threading.Thread(target=echo)
    thread.start()
    payload, times = os.urandom(size), []
    for _ in range(count):
        started = time.perf_counter()
        dealer.send(payload)
        dealer.recv()
        times.append(time.perf_counter() - started)
    thread.join()
    dealer.close(linger=0)
    router.close(linger=0)
    context.term()
    return times


def predict_request() -> ms_pb.PredictRequest:
    """add.add_common of two float32 [2, 2] tensors of ones."""
    request = ms_pb.PredictRequest()
    request.servable_spec.name, request.servable_spec.method_name = "add", "add_common"
    instance = request.instances.add()
    for name in ("x1", "x2"):
        tensor = instance.items[name]
        tensor.dtype = ms_pb.MS_FLOAT32
        tensor.shape.dims.extend([2, 2])
        tensor.data = np.ones((2, 2), np.float32).tobytes()
    return request


def start_serve(transport_name: str, grpc_workers: int) -> tuple[subprocess.Popen[bytes], str]:
    """`msq serve` of the `add` example; its process once ready, and its gRPC address."""
    address = f"127.0.0.1:{free_port()}"
    command = [
        sys.executable, "-m", "msq.launcher.cli", "serve", str(EXAMPLE_SERVABLES),
        "--servable", "add", "--no-rest", "--grpc", address,
        "--broker-frontend", f"tcp://127.0.0.1:{free_port()}",
        "--broker-backend", f"tcp://127.0.0.1:{free_port()}",
        "--broker-transport", transport_name, "--grpc-workers", str(grpc_workers),
        "--log-level", "WARNING",
    ]  # fmt: skip
    process = subprocess.Popen(command, stderr=subprocess.PIPE)
    assert process.stderr is not None
    for line in iter(process.stderr.readline, b""):
        if line.startswith(b"msq ready:"):  # from now on, read its lines and drop them
            threading.Thread(target=process.stderr.read, daemon=True).start()
            return process, address
    raise RuntimeError(f"msq serve exited with {process.wait()}")


def one_in_flight(address: str, count: int) -> list[float]:
    """`count` Predict calls one after another on one channel."""
    request, times = predict_request(), []
    with grpc.insecure_channel(address) as channel:
        predict = pb_grpc.MSServiceStub(channel).Predict  # type: ignore[no-untyped-call]
        for _ in range(count):
            started = time.perf_counter()
            predict(request, timeout=30)
            times.append(time.perf_counter() - started)
    return times


async def in_flight(address: str, concurrency: int, duration_s: float) -> float:
    """Predict calls per second with `concurrency` callers, each on a connection of its own."""
    request = predict_request()
    stop_at = time.perf_counter() + duration_s
    done = [0]

    async def caller() -> None:
        async with grpc.aio.insecure_channel(address, options=OWN_CONNECTION) as channel:
            predict = pb_grpc.MSServiceStub(channel).Predict  # type: ignore[no-untyped-call]
            await predict(request, timeout=30)  # connected before the clock counts
            while time.perf_counter() < stop_at:
                await predict(request, timeout=30)
                done[0] += 1

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return done[0] / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    """Run one measurement and print its figures."""
    parser = argparse.ArgumentParser(prog="python -m msq.benchmarks.serve_hops")
    parser.add_argument("what", choices=("hop", "serve"))
    parser.add_argument("--transport", choices=("ipc", "tcp"), default="ipc")
    parser.add_argument("--grpc-workers", type=int, default=1)
    parser.add_argument("--count", type=int, default=2000, help="calls one at a time")
    parser.add_argument("--bytes", type=int, default=1024, help="hop: message size")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds under load")
    args = parser.parse_args(argv)
    if args.what == "hop":
        with tempfile.TemporaryDirectory(prefix="msq-hop-") as folder:
            for name, endpoint in (("ipc", f"ipc://{Path(folder) / 'hop'}"),
                                   ("tcp", "tcp://127.0.0.1:0")):  # fmt: skip
                times = hop(endpoint, args.count * 10, args.bytes)
                print(f"hop {name}, {args.bytes} bytes: {percentiles(times)} "
                      f"({len(times)} round trips)")  # fmt: skip
        return 0
    process, address = start_serve(args.transport, args.grpc_workers)
    try:
        one_in_flight(address, 200)  # warm up
        times = one_in_flight(address, args.count)
        rate = asyncio.run(in_flight(address, args.concurrency, args.duration))
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    print(
        f"serve transport={args.transport} grpc_workers={args.grpc_workers}: one in flight "
        f"{percentiles(times)}; {args.concurrency} in flight {rate:.0f} calls/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
