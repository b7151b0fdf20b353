"""Unit tests of the protocol-neutral V2 logic: naming, versions, datatypes, metadata, config,
statistics, error statuses and the cached catalog (no sockets)."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from msq.gateways.v2.models import (
    ANY_DATATYPE,
    DTYPE_TO_V2,
    ERROR_STATUS,
    QUEUE_FULL_TOO_MANY_REQUESTS,
    V2_TO_DTYPE,
    ModelCatalog,
    V2Error,
    config_datatype,
    error_status,
    msq_dtype,
    parse_version,
    resolve,
    statistics,
    v2_datatype,
)
from msq.proto.codec import DTYPES
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import BatchPolicy, MethodSignature, ServableInfo, Status, TensorSpec

ADD_INPUTS = (TensorSpec("x1", "float32", (2, 2)), TensorSpec("x2", "float32", (2, 2)))
ADD_OUTPUTS = (TensorSpec("y", "float32", (2, 2)),)
ADD_COMMON = MethodSignature("add_common", ADD_INPUTS, ADD_OUTPUTS)
ADD_CAST = MethodSignature("add_cast", ADD_INPUTS, ADD_OUTPUTS)
CLASSIFY = MethodSignature(
    "classify",
    (TensorSpec("image", "bytes", ()),),
    (TensorSpec("label", "int64", ()), TensorSpec("scores", "float32", (-1,)), TensorSpec("x")),
    BatchPolicy(sizes=(1, 2, 4, 8), preferred_size=8, max_queue_delay_ms=2.5),
)
ROUTE = {
    "servable": "digits",
    "version": 2,
    "method": "classify",
    "requests": 3,
    "instances": 10,
    "executions": 4,
    "instances_succeeded": 9,
    "instances_failed": 1,
    "failures": {"invalid_input": 1},
    "job_sizes": {"4": 2, "1": 1, "2": 1},
    "queue_delay_ms": {"sum": 1.5, "count": 10, "buckets": [[1.0, 5], [5.0, 10]]},
    "compute_ms": {"sum": 12.25, "count": 4},
    "queued": 0,
    "in_flight": 0,
}


def make_status(stats: dict[str, object] | None = None) -> Status:
    return Status(
        request_id=1,
        servables=[
            ServableInfo("add", 1, (ADD_COMMON, ADD_CAST), 1),
            ServableInfo("digits", 1, (CLASSIFY,), 0),
            ServableInfo("digits", 2, (CLASSIFY,), 2),
        ],
        stats=stats if stats is not None else {"uptime_s": 1.0, "rejected": {}, "routes": [ROUTE]},
    )


def test_datatype_mapping_covers_every_msq_dtype_both_ways() -> None:
    assert set(DTYPE_TO_V2) == set(DTYPES)
    for datatype, dtype in V2_TO_DTYPE.items():
        assert v2_datatype(dtype) == datatype
        assert msq_dtype(datatype) == dtype
    assert v2_datatype("str") == "BYTES"
    assert v2_datatype("float16") == "FP16"
    assert v2_datatype(None) == ANY_DATATYPE
    assert msq_dtype("BYTES", declared="str") == "str"
    assert msq_dtype("BYTES", declared=None) == "bytes"
    assert msq_dtype("FP32", declared="str") == "float32"


@pytest.mark.parametrize("datatype", ["BF16", "FLOAT32", "fp32", ""])
def test_unsupported_datatype_is_invalid_input(datatype: str) -> None:
    with pytest.raises(V2Error) as info:
        msq_dtype(datatype)
    assert info.value.kind is ErrorKind.INVALID_INPUT
    assert repr(datatype) in info.value.message


def test_config_datatypes_follow_triton() -> None:
    assert config_datatype("float32") == "TYPE_FP32"
    assert config_datatype("bytes") == "TYPE_STRING"
    assert config_datatype("str") == "TYPE_STRING"
    assert config_datatype("bool") == "TYPE_BOOL"
    assert config_datatype(None) == "TYPE_INVALID"


def test_version_strings() -> None:
    assert parse_version("") == 0
    assert parse_version("0") == 0
    assert parse_version("12") == 12
    for bad in ("-1", "1.0", "v1", " 1"):
        with pytest.raises(V2Error) as info:
            parse_version(bad)
        assert info.value.kind is ErrorKind.INVALID_INPUT


def test_resolve_servable_dot_method_and_bare_single_method_servable() -> None:
    status = make_status()
    model = resolve(status, "add.add_cast")
    assert (model.servable, model.method, model.version, model.versions) == (
        "add",
        ADD_CAST,
        1,
        (1,),
    )
    assert model.name == "add.add_cast"
    bare = resolve(status, "digits")
    assert (bare.name, bare.version, bare.versions, bare.workers) == (
        "digits.classify",
        2,
        (1, 2),
        2,
    )
    assert resolve(status, "digits.classify", "1").workers == 0
    assert resolve(status, "digits.classify", "0").version == 2


@pytest.mark.parametrize(
    ("name", "version", "needle"),
    [
        ("add", "", "add.add_cast, add.add_common"),
        ("nope", "", "'nope' is not available"),
        ("nope.add_common", "", "is not available"),
        ("add.nope", "", "method is not available"),
        ("digits.classify", "3", "version 3 is not available"),
        (".add_common", "", "is not available"),
    ],
)
def test_resolve_unknown_models_are_not_found(name: str, version: str, needle: str) -> None:
    with pytest.raises(V2Error) as info:
        resolve(make_status(), name, version)
    assert info.value.kind is ErrorKind.NOT_FOUND
    assert needle in info.value.message
    assert info.value.status.grpc_code is grpc.StatusCode.NOT_FOUND
    assert info.value.status.http_status == 404


def test_metadata_of_non_batching_and_batching_methods() -> None:
    status = make_status()
    assert resolve(status, "add.add_common").metadata() == {
        "name": "add.add_common",
        "versions": ["1"],
        "platform": "mindspore_mindir",
        "inputs": [
            {"name": "x1", "datatype": "FP32", "shape": [2, 2]},
            {"name": "x2", "datatype": "FP32", "shape": [2, 2]},
        ],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [2, 2]}],
    }
    assert resolve(status, "digits").metadata() == {
        "name": "digits.classify",
        "versions": ["1", "2"],
        "platform": "mindspore_mindir",
        "inputs": [{"name": "image", "datatype": "BYTES", "shape": [-1]}],
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "scores", "datatype": "FP32", "shape": [-1, -1]},
            {"name": "x", "datatype": ANY_DATATYPE, "shape": [-1, -1]},
        ],
    }


def test_config_of_non_batching_and_batching_methods() -> None:
    status = make_status()
    assert resolve(status, "add.add_cast").config() == {
        "name": "add.add_cast",
        "platform": "mindspore_mindir",
        "backend": "msq",
        "max_batch_size": 0,
        "input": [
            {"name": "x1", "data_type": "TYPE_FP32", "dims": [2, 2]},
            {"name": "x2", "data_type": "TYPE_FP32", "dims": [2, 2]},
        ],
        "output": [{"name": "y", "data_type": "TYPE_FP32", "dims": [2, 2]}],
    }
    config = resolve(status, "digits").config()
    assert config["max_batch_size"] == 8
    assert config["input"] == [{"name": "image", "data_type": "TYPE_STRING", "dims": []}]
    assert config["output"][2] == {"name": "x", "data_type": "TYPE_INVALID", "dims": [-1]}
    assert config["dynamic_batching"] == {
        "preferred_batch_size": [8],
        "max_queue_delay_microseconds": 2500,
    }


def test_statistics_from_broker_routes() -> None:
    expected = {
        "name": "digits.classify",
        "version": "2",
        "last_inference": 0,
        "inference_count": 9,
        "execution_count": 4,
        "inference_stats": {
            "success": {"count": 9, "ns": 0},
            "fail": {"count": 1, "ns": 0},
            "queue": {"count": 10, "ns": 1_500_000},
            "compute_input": {"count": 0, "ns": 0},
            "compute_infer": {"count": 4, "ns": 12_250_000},
            "compute_output": {"count": 0, "ns": 0},
        },
        "batch_stats": [
            {"batch_size": 1, "compute_infer": {"count": 1, "ns": 0}},
            {"batch_size": 2, "compute_infer": {"count": 1, "ns": 0}},
            {"batch_size": 4, "compute_infer": {"count": 2, "ns": 0}},
        ],
    }
    status = make_status()
    assert statistics(status) == [expected]
    assert statistics(status, "digits") == [expected]
    assert statistics(status, "digits.classify", "2") == [expected]
    assert statistics(status, "digits.classify", "1") == []
    assert statistics(status, "add.add_common") == []
    with pytest.raises(V2Error):
        statistics(status, "nope")


def test_statistics_tolerate_missing_fields() -> None:
    status = make_status({"routes": [{"servable": "add", "version": 1, "method": "add_cast"}]})
    (entry,) = statistics(status, "add.add_cast")
    assert entry["inference_count"] == 0
    assert entry["inference_stats"]["queue"] == {"count": 0, "ns": 0}
    assert entry["batch_stats"] == []
    assert statistics(make_status({})) == []


def test_error_statuses() -> None:
    expected = {
        ErrorKind.INVALID_INPUT: (grpc.StatusCode.INVALID_ARGUMENT, 400),
        ErrorKind.NOT_FOUND: (grpc.StatusCode.NOT_FOUND, 404),
        ErrorKind.WORKER_UNAVAILABLE: (grpc.StatusCode.UNAVAILABLE, 503),
        ErrorKind.QUEUE_FULL: (grpc.StatusCode.UNAVAILABLE, 503),
        ErrorKind.TIMEOUT: (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
        ErrorKind.MODEL_ERROR: (grpc.StatusCode.INTERNAL, 500),
        ErrorKind.INTERNAL: (grpc.StatusCode.INTERNAL, 500),
    }
    assert {kind: (s.grpc_code, s.http_status) for kind, s in ERROR_STATUS.items()} == expected
    assert set(ERROR_STATUS) == set(ErrorKind)
    assert error_status(ErrorKind.QUEUE_FULL, QUEUE_FULL_TOO_MANY_REQUESTS).http_status == 429
    assert error_status(ErrorKind.TIMEOUT, QUEUE_FULL_TOO_MANY_REQUESTS).http_status == 504
    error = V2Error.of(Failure(ErrorKind.TIMEOUT, "deadline passed"))
    assert (error.kind, error.message, str(error)) == (ErrorKind.TIMEOUT, *["deadline passed"] * 2)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CountingBroker:
    """Answers status queries with `status` (None: no answer), counting them."""

    def __init__(self, status: Status | None) -> None:
        self.status = status
        self.queries = 0

    async def query(self) -> Status | None:
        self.queries += 1
        await asyncio.sleep(0)
        return self.status


def test_catalog_caches_status_and_shares_one_query() -> None:
    broker, clock = CountingBroker(make_status()), FakeClock()
    catalog = ModelCatalog(broker.query, ttl_s=1.0, clock=clock)

    async def scenario() -> None:
        models = await asyncio.gather(*(catalog.resolve("add.add_common") for _ in range(5)))
        assert {m.name for m in models} == {"add.add_common"}
        assert broker.queries == 1
        clock.now += 0.5
        assert await catalog.model_ready("digits")
        assert broker.queries == 1
        clock.now += 0.6
        assert await catalog.server_ready()
        assert broker.queries == 2
        assert len(await catalog.statistics()) == 1  # statistics are always fresh
        assert broker.queries == 3
        assert [m.name for m in await catalog.models()] == [
            "add.add_cast",
            "add.add_common",
            "digits.classify",
        ]

    asyncio.run(scenario())


def test_catalog_refreshes_on_unknown_name_at_most_every_min_refresh() -> None:
    broker, clock = CountingBroker(Status(1, [], {})), FakeClock()
    catalog = ModelCatalog(broker.query, ttl_s=10.0, min_refresh_s=0.1, clock=clock)

    async def scenario() -> None:
        assert not await catalog.server_ready()
        assert broker.queries == 1
        broker.status = make_status()  # a worker registered meanwhile
        with pytest.raises(V2Error):
            await catalog.resolve("add.add_common")  # the cache is too fresh to refresh
        assert broker.queries == 1
        clock.now += 0.2
        assert (await catalog.resolve("add.add_common")).name == "add.add_common"
        assert broker.queries == 2
        clock.now += 0.2
        assert not await catalog.model_ready("add.nope")
        assert not await catalog.model_ready("digits.classify", "1")  # no worker for version 1
        assert broker.queries == 3

    asyncio.run(scenario())


def test_catalog_without_broker() -> None:
    catalog = ModelCatalog(CountingBroker(None).query)

    async def scenario() -> None:
        assert not await catalog.server_ready()
        assert not await catalog.model_ready("add")
        with pytest.raises(V2Error) as info:
            await catalog.resolve("add.add_common")
        assert info.value.kind is ErrorKind.WORKER_UNAVAILABLE
        assert info.value.status.http_status == 503

    asyncio.run(scenario())
