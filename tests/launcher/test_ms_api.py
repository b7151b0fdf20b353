"""MindSpore Serving's start API: its checks and messages, exactly (no process is started)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from msq.launcher import ms_server as server
from msq.launcher.ms_checks import GRPC_TAG, RESTFUL_TAG, check_address
from msq.launcher.ms_runtime import Server
from msq.launcher.settings import TLS, Deployment, Servable
from msq.launcher.supervisor import Supervisor
from msq.workers import register
from msq.workers.compat import mindspore_serving_alias
from tests.launcher.ms_api_cases import ACTUALLY, SERVABLE_CASES, refused
from tests.processes import EXAMPLES

DIR = str(EXAMPLES)


ITEM = "The item value"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        *SERVABLE_CASES,
        ({"num_parallel_workers": 65},
         "Parameter 'num_parallel_workers' should be in range [0,64]"),
        ({"device_ids": (0, 0)}, f"{ITEM} '0' in parameter 'device_ids' should not be repeated"),
        ({"device_ids": (0, -1)}, f"{ITEM} '-1' in parameter 'device_ids' should be >= 0"),
        ({"device_ids": "0"},
         f"Parameter 'device_ids' should be int or tuple/list of int, {ACTUALLY} 'str'>"),
        ({"device_ids": (0, 1.0)},
         f"{ITEM} '1.0' in parameter 'device_ids' should be int, {ACTUALLY} 'float'>"),
        ({"device_type": "TPU"},
         "Unsupported device type 'TPU', only support 'Ascend', 'GPU', 'CPU' and None, "
         "case ignored"),
        ({"dec_key": "0123456789abcdef"},
         f"Parameter 'dec_key' should be bytes, {ACTUALLY} 'str'>"),
        ({"dec_key": b""}, "Parameter 'dec_key' should not be empty bytes"),
        ({"dec_key": b"short"}, "Parameter 'dec_key' length 5 expected to be 16, 24 or 32"),
        ({"dec_mode": "AES-ECB"}, "Parameter 'dec_mode' expected to be 'AES-GCM' or 'AES-CBC'"),
    ],
)  # fmt: skip
def test_servable_start_config_checks(kwargs: dict[str, Any], message: str) -> None:
    arguments = {"servable_directory": DIR, "servable_name": "add", **kwargs}
    refused(message, server.ServableStartConfig, **arguments)


def test_one_worker_per_device_id_and_num_parallel_workers_in_all() -> None:
    def servable(**kwargs: Any) -> Servable:
        return server.ServableStartConfig(DIR, "add", device_type="CPU", **kwargs).servable(None)

    assert servable().worker_devices() == ["cpu"]  # no ids and 0 workers: one
    assert servable(device_ids=(0, 1)).worker_devices() == ["cpu:0", "cpu:1"]
    assert servable(device_ids=0, num_parallel_workers=3).worker_devices() == ["cpu:0"] * 3
    assert servable(device_ids=[0, 1], num_parallel_workers=1).worker_devices() == [
        "cpu:0",
        "cpu:1",
    ]
    assert servable(num_parallel_workers=2).worker_devices() == ["cpu", "cpu"]
    gpu = server.ServableStartConfig(DIR, "add", device_ids=(2, 3), device_type="gpu",
                                     num_parallel_workers=3, version_number=2)  # fmt: skip
    assert gpu.servable(None).worker_devices() == ["gpu:2", "gpu:3", "gpu:2"]
    assert gpu.servable(None).version == 2
    assert gpu.num_parallel_workers == 3


def test_the_key_is_never_shown_and_goes_to_the_workers_as_a_file() -> None:
    key = b"0123456789abcdef"
    config = server.ServableStartConfig(
        DIR, "add", device_type="cpu", dec_key=key, dec_mode="AES-CBC"
    )
    assert config.dec_key == key
    assert "0123456789abcdef" not in repr(config)
    assert "dec_key=<hidden>" in repr(config)
    servable = config.servable(Path("/private/k"))
    assert (servable.dec_key_file, servable.dec_mode) == (Path("/private/k"), "AES-CBC")


def test_ssl_config_checks() -> None:
    refused("Parameter 'certificate' should be str, but actually <class 'NoneType'>",
            server.SSLConfig, None, "k")  # fmt: skip
    refused("Parameter 'verify_client' should be bool, but actually <class 'int'>",
            server.SSLConfig, "c", "k", "ca", 1)  # fmt: skip
    refused("Parameter 'custom_ca' should be str, but actually <class 'NoneType'>",
            server.SSLConfig, "c", "k", verify_client=True)  # fmt: skip
    assert server.SSLConfig("c", "k", "ca").tls() == TLS(Path("c"), Path("k"))  # CA ignored
    assert server.SSLConfig("c", "k", "ca", True).tls() == TLS(
        Path("c"), Path("k"), Path("ca"), True
    )


GRPC = "Serving Error: The {} Serving gRPC address '{}'"
REST = "Serving Error: The {} RESTful server address '{}'"
RANGE = " is out of legal range [1 ~ 65535]"


@pytest.mark.parametrize(
    ("address", "tag", "message"),
    [
        ("127.0.0.1", GRPC_TAG, GRPC.format("format of the", "127.0.0.1") + " is illegal"),
        (":5500", GRPC_TAG,
         "Serving Error: Missing ip or port of the Serving gRPC address ':5500'"),
        ("127.0.0.1:", RESTFUL_TAG,
         "Serving Error: Missing ip or port of the RESTful server address '127.0.0.1:'"),
        ("127.0.0.1:5000000", GRPC_TAG, GRPC.format("port of the", "127.0.0.1:5000000") + RANGE),
        ("127.0.0.1:0", RESTFUL_TAG, REST.format("port of the", "127.0.0.1:0") + RANGE),
        ("127.0.0.1:abc", GRPC_TAG,
         "Serving Error: The type of Serving gRPC address '127.0.0.1:abc' port is not a number"),
        ("unix:", GRPC_TAG, "Serving Error: Empty grpc server unix domain socket address"),
    ],
)  # fmt: skip
def test_address_checks(address: str, tag: str, message: str) -> None:
    refused(message, check_address, address, tag, allow_unix=tag == GRPC_TAG)


def test_start_calls_check_their_arguments_before_starting_anything() -> None:
    refused("Serving Error: The format of the Serving gRPC address '127.0.0.1' is illegal",
            server.start_grpc_server, "127.0.0.1")  # fmt: skip
    refused("Serving Error: The type of RESTful server address 'unix:/tmp/x' port is not a number",
            server.start_restful_server, "unix:/tmp/x")  # fmt: skip
    refused("Parameter 'max_msg_mb_size' should be in range [1,512]",
            server.start_grpc_server, "127.0.0.1:5500", 513)  # fmt: skip
    refused("Parameter 'address' should be str, but actually <class 'int'>",
            server.start_restful_server, 1500)  # fmt: skip
    refused("The type of ssl_config should be type of SSLConfig",
            server.start_grpc_server, "127.0.0.1:5500", ssl_config="tls")  # fmt: skip
    refused("The type of ssl_config should be class of SSLConfig",
            server.start_restful_server, "127.0.0.1:1500", ssl_config="tls")  # fmt: skip
    refused("Parameter 'add' should be ServableStartConfig, list or tuple of ServableStartConfig, "
            "but actually <class 'str'>", server.start_servables, "add")  # fmt: skip
    refused("The item of parameter '['add']' should be ServableStartConfig, but actually "
            "<class 'str'>", server.start_servables, ["add"])  # fmt: skip
    refused("Parameter 'max_enqueued_requests' should be >= 1",
            server.set_max_enqueued_requests, 0)  # fmt: skip
    server.set_max_enqueued_requests(7)
    assert server._CURRENT.server.deployment.batching == {"*": {"max_queue_size": 7}}
    server.stop()  # forgets the settings too
    assert server._CURRENT.server.deployment.batching == {}
    assert not server._CURRENT.server.running


def test_the_alias_gives_the_start_api_and_keeps_register() -> None:
    with mindspore_serving_alias():
        from mindspore_serving import server as aliased  # type: ignore[import-not-found]
        from mindspore_serving.server import master  # type: ignore[import-not-found]
        from mindspore_serving.server.register import add_stage  # type: ignore[import-not-found]

        assert aliased.register is register
        assert add_stage is register.add_stage
        for name in server.MINDSPORE_SERVING_API:
            assert getattr(aliased, name) is getattr(server, name)
        assert master.context.set_max_enqueued_requests is server.set_max_enqueued_requests
    with pytest.raises(ImportError):
        import mindspore_serving  # type: ignore[import-not-found]  # noqa: F401


def test_an_api_key_goes_to_a_private_file_removed_at_stop(tmp_path: Path) -> None:
    running = Server(Deployment())
    running.workdir = tmp_path / "private"
    running.workdir.mkdir(mode=0o700)
    running.supervisor = Supervisor()  # nothing started: stop() only cleans up
    path = running.key_file(b"0123456789abcdef")
    assert path.parent == running.workdir
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_bytes() == b"0123456789abcdef"
    running.stop()
    assert not running.workdir.exists()
