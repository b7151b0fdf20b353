"""`python -m msq.benchmarks.floors`: what this host leaves msq under the targets T1b and T3.

    python -m msq.benchmarks.floors grpc    # a grpc.aio (and sync) echo: p50, CPU per call
    python -m msq.benchmarks.floors chain   # four ZeroMQ hops through idle Python processes
    python -m msq.benchmarks.floors model   # the mlp model's CPU per call and per instance

`grpc` serves an echo method from a child process (grpc.aio, then grpc's thread-pool server)
and calls it from a grpc.aio client: the round trip's p50 one call at a time with a 100-byte
message, then µs of CPU per call of the server and of the client with `--concurrency` calls of
`--bytes` in flight (default: one T3 request, 32 x 784 float32). `chain` sends a message from a
DEALER through a forwarding ROUTER-ROUTER process to an echoing DEALER process and back, one
at a time (gateway -> broker -> worker -> broker -> gateway, nothing else done), over ipc://
and tcp:// with msq's socket options. `model` calls the `mlp` benchmark model in-process at
each `--batch` size, as the compute floor does.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent import futures
from pathlib import Path

import grpc
import grpc.aio
import psutil
import zmq

from msq.benchmarks.procs import free_port
from msq.benchmarks.serve_hops import percentiles
from msq.proto import transport

#: Bytes of one T3 request's tensor data: 32 instances of 784 float32.
T3_BYTES = 32 * 784 * 4
_METHOD = "/floor.Echo/Echo"


def _echo_handlers() -> grpc.GenericRpcHandler:
    def echo(data: bytes, context: object) -> bytes:
        return data[:1300]  # a T3 reply's size at most

    handler = grpc.unary_unary_rpc_method_handler(echo)
    return grpc.method_handlers_generic_handler("floor.Echo", {"Echo": handler})


def _serve_aio(port: int) -> None:
    async def serve() -> None:
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((_echo_handlers(),))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    asyncio.run(serve())


def _serve_sync(port: int) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((_echo_handlers(),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


async def _grpc_client(port: int, server: psutil.Process, size: int, concurrency: int) -> str:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(_METHOD)
        await channel.channel_ready()
        times = []
        for _ in range(3000):
            started = time.perf_counter()
            await call(b"x" * 100)
            times.append(time.perf_counter() - started)
        body, calls, stop = os.urandom(size), [0], [False]

        async def caller() -> None:
            while not stop[0]:
                await call(body)
                calls[0] += 1

        tasks = [asyncio.ensure_future(caller()) for _ in range(concurrency)]
        await asyncio.sleep(1.0)
        calls[0], server_cpu, own_cpu = 0, sum(server.cpu_times()[:2]), sum(os.times()[:2])
        await asyncio.sleep(5.0)
        count = calls[0]
        server_cpu = sum(server.cpu_times()[:2]) - server_cpu
        own_cpu = sum(os.times()[:2]) - own_cpu
        stop[0] = True
        await asyncio.gather(*tasks)
    return (
        f"one at a time {percentiles(times[500:])}; {concurrency} x {size} bytes in flight: "
        f"server {server_cpu / count * 1e6:.0f} µs, client {own_cpu / count * 1e6:.0f} µs "
        f"of CPU per call"
    )


def grpc_floor(size: int, concurrency: int) -> None:
    """Print the echo's figures for grpc.aio's server and grpc's thread-pool server."""
    for name, serve in (("grpc.aio", _serve_aio), ("grpc sync", _serve_sync)):
        port = free_port()
        child = multiprocessing.Process(target=serve, args=(port,), daemon=True)
        child.start()
        try:
            figures = asyncio.run(_grpc_client(port, psutil.Process(child.pid), size, concurrency))
            print(f"{name} echo: {figures}")
        finally:
            child.kill()
            child.join()


def _forward(frontend: str, backend: str) -> None:
    """The broker's part: requests from the frontend to the one worker, answers back."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    gateways, workers = transport.router(context, frontend), transport.router(context, backend)
    poller = zmq.Poller()
    poller.register(gateways, zmq.POLLIN)
    poller.register(workers, zmq.POLLIN)
    worker = None
    while True:
        events = dict(poller.poll(100))
        if workers in events:
            frames = workers.recv_multipart(copy=False)
            if worker is None:
                worker = frames[0].bytes
            else:
                gateways.send_multipart(frames[1:], copy=False)
        if gateways in events and worker is not None:
            gateways_frames = gateways.recv_multipart(copy=False)
            workers.send_multipart([worker, *gateways_frames], copy=False)


def _echo_worker(backend: str) -> None:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    dealer = transport.dealer(context, backend)
    dealer.send(b"ready")
    while True:
        dealer.send_multipart(dealer.recv_multipart(copy=False), copy=False)


def chain(frontend: str, backend: str, count: int) -> list[float]:
    """`count` round trips of a 200-byte message through the forwarder and the echo worker."""
    children = [
        multiprocessing.Process(target=_forward, args=(frontend, backend), daemon=True),
        multiprocessing.Process(target=_echo_worker, args=(backend,), daemon=True),
    ]
    for child in children:
        child.start()
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    dealer = transport.dealer(context, frontend)
    times = []
    try:
        time.sleep(1.0)
        for _ in range(count):
            started = time.perf_counter()
            dealer.send_multipart([b"request", b"x" * 200])
            dealer.recv_multipart()
            times.append(time.perf_counter() - started)
            time.sleep(0.0005)  # every process goes back to sleep, as at one in flight
    finally:
        dealer.close(linger=0)
        context.term()
        for child in children:
            child.kill()
            child.join()
    return times[count // 10 :]


def model_floor(batches: list[int], seconds: float) -> None:
    """Print the mlp model's CPU and wall time per call and per instance at each batch."""
    from msq.benchmarks.compute import load_compute  # noqa: PLC0415 - imports MindSpore
    from msq.benchmarks.scenarios import SCENARIOS  # noqa: PLC0415

    compute = load_compute("mlp")
    for batch in batches:
        instances = SCENARIOS["mlp"].instances(batch)
        for _ in range(20):
            compute(instances)
        calls, started, cpu = 0, time.perf_counter(), sum(os.times()[:2])
        while time.perf_counter() - started < seconds:
            compute(instances)
            calls += 1
        wall = (time.perf_counter() - started) / calls
        used = (sum(os.times()[:2]) - cpu) / calls
        print(
            f"mlp batch {batch}: {batch / wall:.0f} instances/s, per call {wall * 1e3:.2f} ms "
            f"wall, {used * 1e3:.2f} ms CPU; {used / batch * 32 * 1e6:.0f} µs CPU per 32 instances"
        )


def main(argv: list[str] | None = None) -> int:
    """Run one measurement and print its figures."""
    parser = argparse.ArgumentParser(prog="python -m msq.benchmarks.floors")
    parser.add_argument("what", choices=("grpc", "chain", "model"))
    parser.add_argument("--bytes", type=int, default=T3_BYTES, help="grpc: message in flight")
    parser.add_argument("--concurrency", type=int, default=8, help="grpc: calls in flight")
    parser.add_argument("--count", type=int, default=3000, help="chain: round trips")
    parser.add_argument("--batch", default="32,64", help="model: batch sizes")
    parser.add_argument("--seconds", type=float, default=3.0, help="model: per batch size")
    args = parser.parse_args(argv)
    if args.what == "grpc":
        grpc_floor(args.bytes, args.concurrency)
    elif args.what == "chain":
        with tempfile.TemporaryDirectory(prefix="msq-chain-") as folder:
            for name, ends in (
                ("ipc", (f"ipc://{Path(folder) / 'front'}", f"ipc://{Path(folder) / 'back'}")),
                ("tcp", (f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}")),
            ):
                print(f"four hops over {name}: {percentiles(chain(*ends, args.count))}")
    else:
        model_floor([int(size) for size in args.batch.split(",")], args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
