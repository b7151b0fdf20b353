"""The gateways' CPU per instance for MindSpore Serving requests, in-process, without sockets.

What a gateway does with a request besides its server (grpc.aio, Falcon) and the sockets:
decode the request (`PredictRequest` for `ms-grpc`, the JSON body for `ms-rest`), stack its
instances into columns and encode the broker `Request` (`request`); decode the broker's
`Reply`, give each instance its outcome and write the answer (`reply`). Each side runs for
`--seconds` of process CPU time; the figures are µs of CPU per request and per instance.

    python -m msq.benchmarks.gateway_codec --protocol ms-grpc --scenario mlp --instances 32
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable

import numpy as np

from msq.benchmarks.payloads import ms_grpc_request, ms_rest_body
from msq.benchmarks.scenarios import SCENARIOS
from msq.gateways.core.instances import merge_outcomes, reply_outcomes
from msq.gateways.grpc.ms_service import decode_instances, encode_reply, serialize_reply
from msq.gateways.grpc.wire import RawPredictRequest, parse_predict_request
from msq.gateways.rest.ms_json import dump_json, parse_request, reply_document
from msq.proto.codec import to_wire
from msq.proto.columns import stack
from msq.proto.errors import Failure
from msq.proto.messages import InstanceOutcome, Reply, Request
from msq.proto.wire import decode, encode


def grpc_request(body: bytes) -> tuple[RawPredictRequest, list[InstanceOutcome]]:
    """A `PredictRequest` to the frames of its broker `Request`, as the gRPC gateway does
    (instances of one layout straight into columns); the request and its decoded instances
    (none when read as columns)."""
    request = parse_predict_request(body)
    if request.columns is not None:
        encode(Request(1, request.name, request.method_name, [request.columns]))
        return request, []
    decoded = decode_instances(request)
    valid = [outcome for outcome in decoded if not isinstance(outcome, Failure)]
    encode(Request(1, request.name, request.method_name, stack(valid)))
    return request, decoded


def grpc_reply(
    frames: list[memoryview], decoded: tuple[RawPredictRequest, list[InstanceOutcome]]
) -> bytes:
    """The broker's `Reply` frames to a serialized `PredictReply`."""
    reply = decode(frames)
    assert isinstance(reply, Reply)
    request, instances = decoded
    if request.columns is not None:
        outcomes = reply_outcomes(reply, request.columns.count)
    else:
        outcomes = merge_outcomes(instances, reply)
    return serialize_reply(encode_reply(request, outcomes))


def rest_request(body: bytes) -> list[InstanceOutcome]:
    """A `POST /model/...` body to the frames of its broker `Request`; the instances."""
    instances = parse_request(body)
    encode(Request(1, "servable", "method", stack(instances)))
    return list[InstanceOutcome](instances)


def rest_reply(frames: list[memoryview], decoded: list[InstanceOutcome]) -> bytes:
    """The broker's `Reply` frames to the JSON answer."""
    reply = decode(frames)
    assert isinstance(reply, Reply)
    document, _ = reply_document(merge_outcomes(decoded, reply))
    return dump_json(document)


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
    parser.add_argument("--protocol", choices=["ms-grpc", "ms-rest"], default="ms-grpc")
    parser.add_argument("--scenario", choices=["mlp", "tiny"], default="mlp")
    parser.add_argument("--instances", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    scenario = SCENARIOS[args.scenario]
    rng = np.random.default_rng(0)
    instances = [scenario.make_instance(rng) for _ in range(args.instances)]
    outputs = [{"y": to_wire(rng.standard_normal(10).astype(np.float32))} for _ in instances]
    frames = [memoryview(frame) for frame in encode(Reply(1, 1, stack(outputs)))]
    request_side: Callable[[], object]
    reply_side: Callable[[], object]
    if args.protocol == "ms-grpc":
        grpc_body = ms_grpc_request(scenario.servable, scenario.method, instances)
        grpc_decoded = grpc_request(grpc_body)
        request_side = functools.partial(grpc_request, grpc_body)
        reply_side = functools.partial(grpc_reply, frames, grpc_decoded)
    else:
        rest_body = ms_rest_body(instances)
        rest_decoded = rest_request(rest_body)
        request_side = functools.partial(rest_request, rest_body)
        reply_side = functools.partial(rest_reply, frames, rest_decoded)
    count = args.instances
    print(f"{args.protocol} {args.scenario}, {count} instances per request:")
    print("  µs of CPU per request (per instance)")
    total = 0.0
    for side, work in (
        ("request", request_side),
        ("reply", reply_side),
    ):
        spent = cpu_us(work, args.seconds)
        total += spent
        print(f"  {side:8} {spent:9.1f} ({spent / count:6.2f})")
    print(f"  {'total':8} {total:9.1f} ({total / count:6.2f})")


if __name__ == "__main__":
    main()
