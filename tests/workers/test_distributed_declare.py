"""`declare_servable` (MindSpore Serving's distributed API): declaration, validation, the
`mindspore_serving.server.distributed` alias, and the worker's command-line flags for it."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from msq.workers.cli import check_agent_endpoint, parse_args
from msq.workers.compat import mindspore_serving_alias
from msq.workers.definition import ServableConfigError, ServableLoadError, collecting
from msq.workers.device import DeviceSpec
from msq.workers.distributed import DistributedModel, declare_servable, rank_file
from msq.workers.register import declare_model


def test_declare_servable_declares_one_model_of_one_file_per_rank() -> None:
    with collecting("tp") as servable:
        model = declare_servable(rank_size=4)
    assert servable.models == [model]
    assert isinstance(model, DistributedModel)
    assert model.files == ("rank_0.mindir", "rank_1.mindir", "rank_2.mindir", "rank_3.mindir")
    assert [rank_file(r) for r in range(2)] == ["rank_0.mindir", "rank_1.mindir"]
    assert (model.rank_size, model.stage_size, model.with_batch_dim) == (4, 1, True)
    assert (model.without_batch_dim_inputs, model.enable_pipeline_infer) == ((), False)
    assert model.model_key == "distributed(4 ranks)"


def test_declare_servable_keeps_its_options() -> None:
    with collecting("tp"):
        model = declare_servable(8, 2, False, [2, 0], True)
    assert (model.rank_size, model.stage_size, model.with_batch_dim) == (8, 2, False)
    assert (model.without_batch_dim_inputs, model.enable_pipeline_infer) == ((0, 2), True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rank_size": "2"}, "Parameter 'rank_size' should be int, but actually <class 'str'>"),
        ({"rank_size": True}, "Parameter 'rank_size' should be int, but actually <class 'bool'>"),
        ({"rank_size": 0}, "Parameter 'rank_size' should be >= 1"),
        ({"rank_size": 2, "stage_size": 0}, "Parameter 'stage_size' should be >= 1"),
        ({"rank_size": 3, "stage_size": 2},
         "Parameter 'rank_size' (3) should be a multiple of 'stage_size' (2)"),
        ({"rank_size": 2, "with_batch_dim": 1},
         "Parameter 'with_batch_dim' should be bool, but actually <class 'int'>"),
        ({"rank_size": 2, "enable_pipeline_infer": None},
         "Parameter 'enable_pipeline_infer' should be bool, but actually <class 'NoneType'>"),
        ({"rank_size": 2, "without_batch_dim_inputs": "0"},
         "Parameter 'without_batch_dim_inputs' should be int or tuple/list of int, but actually "
         "<class 'str'>"),
        ({"rank_size": 2, "without_batch_dim_inputs": [1, 1]},
         "The item value '1' in parameter 'without_batch_dim_inputs' should not be repeated"),
        ({"rank_size": 2, "without_batch_dim_inputs": [-1]},
         "The item value '-1' in parameter 'without_batch_dim_inputs' should be >= 0"),
    ],
)  # fmt: skip
def test_bad_arguments_get_mindspore_servings_messages(
    kwargs: dict[str, object], message: str
) -> None:
    with collecting("tp") as servable, pytest.raises(ServableConfigError) as caught:
        declare_servable(**kwargs)  # type: ignore[arg-type]
    assert str(caught.value) == message
    assert servable.models == []


def test_declare_servable_after_declare_model_is_refused() -> None:
    with collecting("tp") as servable:
        declare_model("a.mindir", "MindIR")
        with pytest.raises(ServableConfigError, match="one distributed model per servable"):
            declare_servable(2)
    assert len(servable.models) == 1


def test_declare_model_after_declare_servable_is_a_load_error(tmp_path: Path) -> None:
    from msq.workers.servable import load_version

    with collecting("tp") as servable:
        declare_servable(2)
        declare_model("a.mindir", "MindIR")
    (tmp_path / "1").mkdir()
    with pytest.raises(ServableLoadError, match="declares no other model"):
        load_version(servable, tmp_path / "1")


def test_stage_size_above_1_is_refused_when_loading(tmp_path: Path) -> None:
    from msq.workers.servable import load_version

    with collecting("tp") as servable:
        declare_servable(4, stage_size=2)
    (tmp_path / "1").mkdir()
    with pytest.raises(ServableLoadError) as caught:
        load_version(servable, tmp_path / "1")
    assert str(caught.value) == (
        "declare_servable(stage_size=2): pipeline stages are not supported by msq; shard the "
        "model over ranks of one stage (stage_size=1)"
    )


def test_the_mindspore_serving_alias_has_the_distributed_namespace() -> None:
    with collecting("tp") as servable, mindspore_serving_alias():
        from mindspore_serving.server import distributed

        module = importlib.import_module("mindspore_serving.server.distributed")
        model = distributed.declare_servable(rank_size=2, stage_size=1)
    assert module is distributed
    assert distributed.declare_servable is declare_servable
    assert servable.models == [model]


def test_worker_flags_for_distributed_servables() -> None:
    base = ["--servable-dir", "d", "--servable", "tp"]
    args = parse_args([*base])
    assert args.devices == (DeviceSpec("cpu"),)
    assert args.device == DeviceSpec("cpu")
    assert (args.distributed_address, args.remote_agents, args.wait_agents_s) == (
        "127.0.0.1:0", False, 0.0)  # fmt: skip
    args = parse_args([*base, "--device", "gpu:0,1", "--distributed-address", "0.0.0.0:6200",
                       "--remote-agents", "--wait-agents-s", "30"])  # fmt: skip
    assert args.devices == (DeviceSpec("gpu", 0), DeviceSpec("gpu", 1))
    assert args.device == DeviceSpec("gpu", 0)
    assert (args.distributed_address, args.remote_agents, args.wait_agents_s) == (
        "0.0.0.0:6200", True, 30.0)  # fmt: skip
    assert parse_args([*base, "--device", "ascend:0-3"]).devices == tuple(
        DeviceSpec("ascend", n) for n in range(4)
    )


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--distributed-address", "6200", "invalid address '6200': use HOST:PORT (port 0: any)"),
        ("--distributed-address", "h:70000", "invalid address 'h:70000'"),
        ("--wait-agents-s", "-1", "'-1' is not a number of seconds >= 0"),
        ("--agent-liveness-s", "soon", "'soon' is not a number of seconds >= 0"),
        ("--device", "gpu:1,1", "a device id is repeated"),
    ],
)
def test_bad_distributed_flags_are_refused(
    flag: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--servable-dir", "d", "--servable", "tp", flag, value])
    assert message in capsys.readouterr().err


def test_the_agent_endpoint_binds_beyond_loopback_only_when_allowed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    check_agent_endpoint("127.0.0.1:0", allow_insecure=False)
    check_agent_endpoint("localhost:6200", allow_insecure=False)
    assert not caplog.records
    with pytest.raises(ValueError, match=r"refusing to bind the agent endpoint 0\.0\.0\.0:6200"):
        check_agent_endpoint("0.0.0.0:6200", allow_insecure=False)
    check_agent_endpoint("10.0.0.2:6200", allow_insecure=True)
    assert [record.getMessage() for record in caplog.records] == [
        "INSECURE (--allow-insecure): agent endpoint 10.0.0.2:6200 bound beyond loopback; any "
        "process that reaches it can join as a rank, and traffic is not encrypted"
    ]
