"""The gateway's CPU per instance for MindSpore Serving `Predict`, in-process, without sockets.

What the gRPC gateway does with a request besides grpc.aio and the sockets: parse the
`PredictRequest`, decode its instances, stack them into columns and encode the broker `Request`
(`request`); decode the broker's `Reply`, give each instance its outcome and write the
`PredictReply` (`reply`). Each side runs for `--seconds` of process CPU time; the figures are
µs of CPU per request and per instance.

    python -m msq.benchmarks.gateway_codec --scenario mlp --instances 32
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from msq.benchmarks.payloads import ms_grpc_request
from msq.benchmarks.scenarios import SCENARIOS
from msq.gateways.core.instances import merge_outcomes
from msq.gateways.grpc.ms_service import decode_instance, fill_reply
from msq.gateways.grpc.wire import parse_predict_request
from msq.proto import ms_service_pb2 as pb
from msq.proto.codec import to_wire
from msq.proto.columns import stack
from msq.proto.errors import Failure
from msq.proto.messages import InstanceOutcome, Reply, Request
from msq.proto.wire import decode, encode


def request_side(body: bytes) -> list[InstanceOutcome]:
    """A `PredictRequest` to the frames of its broker `Request`; the decoded instances."""
    request = parse_predict_request(body)
    decoded = [decode_instance(instance) for instance in request.instances]
    valid = [outcome for outcome in decoded if not isinstance(outcome, Failure)]
    encode(Request(1, request.name, request.method_name, stack(valid)))
    return decoded


def reply_side(frames: list[memoryview], decoded: list[InstanceOutcome]) -> bytes:
    """The broker's `Reply` frames to a serialized `PredictReply`."""
    reply = decode(frames)
    assert isinstance(reply, Reply)
    message = pb.PredictReply()
    fill_reply(message, merge_outcomes(decoded, reply))
    return bytes(message.SerializeToString())


def cpu_us(work: Callable[[], object], seconds: float) -> float:
    """Mean process CPU time of one call of `work`, in µs."""
    work()
    calls, started = 0, time.process_time()
    while (spent := time.process_time() - started) < seconds:
        work()
        calls += 1
    return spent / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=["mlp", "add"], default="mlp")
    parser.add_argument("--instances", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    scenario = SCENARIOS[args.scenario]
    rng = np.random.default_rng(0)
    instances = [scenario.make_instance(rng) for _ in range(args.instances)]
    body = ms_grpc_request(scenario.servable, scenario.method, instances)
    decoded = request_side(body)
    outputs = [{"y": to_wire(rng.standard_normal(10).astype(np.float32))} for _ in instances]
    frames = [memoryview(frame) for frame in encode(Reply(1, 1, stack(outputs)))]
    count = args.instances
    print(f"{args.scenario}, {count} instances per request: µs of CPU per request (per instance)")
    total = 0.0
    for side, work in (
        ("request", lambda: request_side(body)),
        ("reply", lambda: reply_side(frames, decoded)),
    ):
        spent = cpu_us(work, args.seconds)
        total += spent
        print(f"  {side:8} {spent:9.1f} ({spent / count:6.2f})")
    print(f"  {'total':8} {total:9.1f} ({total / count:6.2f})")


if __name__ == "__main__":
    main()
