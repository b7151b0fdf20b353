"""A steady stream of `add` requests through every front door of a deployment — MindSpore
Serving gRPC (`MSService.Predict`), V2 gRPC (`ModelInfer`) and MindSpore Serving REST — for the
failover tests: each client thread sends one request at a time with values of its own and checks
the answer it gets against them."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import numpy as np

from msq.proto import grpc_predict_v2_pb2 as v2
from msq.proto import grpc_predict_v2_pb2_grpc as v2_grpc
from msq.proto import ms_service_pb2 as ms_pb
from msq.proto import ms_service_pb2_grpc as ms_grpc

#: Each client's deadline for one call (s): far beyond any failover.
CALL_TIMEOUT_S = 30.0

Caller = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class Answer:
    """What one request got: its client, its number, and the problem (None: right answer)."""

    client: str
    seq: int
    at: float
    problem: str | None


def ms_grpc_caller(address: str) -> Caller:
    channel = grpc.insecure_channel(address)
    stub = ms_grpc.MSServiceStub(channel)  # type: ignore[no-untyped-call]

    def call(x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
        request = ms_pb.PredictRequest()
        request.servable_spec.name, request.servable_spec.method_name = "add", "add_common"
        instance = request.instances.add()
        for name, value in (("x1", x1), ("x2", x2)):
            tensor = instance.items[name]
            tensor.dtype = ms_pb.MS_FLOAT32
            tensor.shape.dims.extend(value.shape)
            tensor.data = value.tobytes()
        reply = stub.Predict(request, timeout=CALL_TIMEOUT_S)
        if reply.error_msg:
            raise RuntimeError("; ".join(error.error_msg.decode() for error in reply.error_msg))
        return np.frombuffer(reply.instances[0].items["y"].data, np.float32).reshape(2, 2)

    return call


def v2_grpc_caller(address: str) -> Caller:
    channel = grpc.insecure_channel(address)
    stub = v2_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]

    def call(x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
        request = v2.ModelInferRequest(model_name="add.add_common")
        for name, value in (("x1", x1), ("x2", x2)):
            request.inputs.add(name=name, datatype="FP32", shape=[1, 2, 2])
            request.raw_input_contents.append(value.tobytes())
        response = stub.ModelInfer(request, timeout=CALL_TIMEOUT_S)
        return np.frombuffer(response.raw_output_contents[0], np.float32).reshape(2, 2)

    return call


def rest_caller(port: int) -> Caller:
    def call(x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
        body = json.dumps({"instances": [{"x1": x1.tolist(), "x2": x2.tolist()}]})
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=CALL_TIMEOUT_S)
        try:
            connection.request("POST", "/model/add:add_common", body=body)
            response = connection.getresponse()
            document = json.loads(response.read())
        finally:
            connection.close()
        if response.status != 200 or "instances" not in document:
            raise RuntimeError(f"HTTP {response.status}: {document}")
        return np.array(document["instances"][0]["y"], np.float32)

    return call


@dataclass
class SteadyLoad:
    """Client threads calling `add` until `stop`; every answer is recorded and checked."""

    callers: dict[str, Caller]
    answers: list[Answer] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> SteadyLoad:
        for number, (name, caller) in enumerate(self.callers.items(), 1):
            thread = threading.Thread(target=self._run, args=(name, number, caller), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def answered(self) -> int:
        with self._lock:
            return len(self.answers)

    def wait_answered(self, count: int, timeout_s: float = 60.0) -> None:
        """Wait until `count` answers in all have come (generous: the machine may be busy)."""
        give_up = time.monotonic() + timeout_s
        while self.answered() < count:
            assert time.monotonic() < give_up, f"only {self.answered()} answers of {count}"
            time.sleep(0.02)

    def stop(self) -> list[Answer]:
        """Stop sending, wait for the calls in flight, and return every answer."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(CALL_TIMEOUT_S + 5)
        return list(self.answers)

    def _run(self, name: str, number: int, caller: Caller) -> None:
        seq = 0
        while not self._stopping.is_set():
            seq += 1
            x1 = np.full((2, 2), 1000.0 * number + seq, np.float32)  # exact in float32
            x2 = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32) * number
            try:
                y = caller(x1, x2)
                problem = None if np.array_equal(y, x1 + x2) else f"wrong answer {y.tolist()}"
            except Exception as exc:  # a failed call is what the tests count
                problem = f"{type(exc).__name__}: {exc}"
            with self._lock:
                self.answers.append(Answer(name, seq, time.monotonic(), problem))
