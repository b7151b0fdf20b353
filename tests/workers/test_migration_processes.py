"""Servables written for MindSpore Serving, served by real processes: a broker, a gRPC gateway
and workers for `resnet1x` and `lenet1x` (`--legacy-imports`) and the encrypted `secret`
(`--dec-key-file`), answered through msq's MindSpore Serving client."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image

from msq.client import Client
from tests.gateways.grpc_processes import gateway
from tests.processes import Proc, broker, endpoint, start_served, stop_all, worker
from tests.workers.support import OldServables

MEAN = np.array([0.4914 * 255, 0.4822 * 255, 0.4465 * 255], np.float32)
STD = np.array([0.2023 * 255, 0.1994 * 255, 0.2010 * 255], np.float32)


@dataclass
class Stack:
    address: str
    procs: dict[str, Proc]


@pytest.fixture(scope="module")
def stack(old_servables: OldServables) -> Iterator[Stack]:
    frontend, backend = endpoint(), endpoint()
    gateway_proc, address = gateway(frontend)
    root = old_servables.root
    procs = {
        "broker": broker(frontend, backend),
        "resnet1x": worker(backend, "resnet1x", root, "--legacy-imports"),
        "lenet1x": worker(backend, "lenet1x", root, "--legacy-imports"),
        "secret": worker(backend, "secret", root, "--dec-key-file", str(old_servables.key_file)),
        "gateway": gateway_proc,
    }
    expected = {"resnet1x": 1, "lenet1x": 1, "secret": 1}
    start_served(procs.values(), frontend, expected)
    yield Stack(address, procs)
    stop_all(procs.values())


def _png(color: tuple[int, ...], mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (16, 16), color if mode == "RGB" else color[0]).save(buffer, "PNG")
    return buffer.getvalue()


def test_resnet1x_serves_in_legacy_mode(stack: Stack) -> None:
    colors = {"red": (250, 10, 20), "green": (5, 240, 30), "blue": (0, 20, 255)}
    with Client(stack.address, "resnet1x", "classify_top1") as client:
        results = client.infer([{"image": _png(color)} for color in colors.values()])
    assert results == [{"label": label} for label in colors]
    with Client(stack.address, "resnet1x", "channel_means") as client:
        [result] = client.infer({"image": _png(colors["green"])})
    expected = (np.array(colors["green"], np.float32) - MEAN) / STD
    np.testing.assert_allclose(result["means"], expected, rtol=1e-5)


def test_lenet1x_serves_in_legacy_mode(stack: Stack) -> None:
    with Client(stack.address, "lenet1x", "brightness") as client:
        results = client.infer([{"image": _png((51,), "L")}, {"image": _png((255,), "L")}])
    assert len(results) == 2
    np.testing.assert_allclose(results[0]["brightness"], np.float32(0.2), rtol=1e-6)
    np.testing.assert_allclose(results[1]["brightness"], np.float32(1.0), rtol=1e-6)


def test_legacy_mode_logs_one_warning_per_mapping(stack: Stack) -> None:
    resnet_log = stack.procs["resnet1x"].log()
    for module in ("transforms", "vision"):
        line = f"legacy imports: mindspore.dataset.{module}.c_transforms (removed in MindSpore 2.0)"
        assert resnet_log.count(line) == 1
    with Client(stack.address, "lenet1x", "brightness") as client:
        for _ in range(2):
            assert "brightness" in client.infer({"image": _png((0,), "L")})[0]
    pillow = "legacy imports: PIL.Image.ANTIALIAS (removed in Pillow 10) maps to PIL.Image.LANCZOS"
    assert stack.procs["lenet1x"].log().count(pillow) == 1


def test_an_encrypted_model_serves_with_its_key(stack: Stack, old_servables: OldServables) -> None:
    with Client(stack.address, "secret", "add_common") as client:
        [result] = client.infer(
            {"x1": np.full((2, 2), 1.25, np.float32), "x2": np.full((2, 2), 2.0, np.float32)}
        )
    np.testing.assert_array_equal(result["y"], np.full((2, 2), 3.25, np.float32))
    secret = stack.procs["secret"]
    with open(f"/proc/{secret.pid}/cmdline", "rb") as cmdline:
        argv = cmdline.read()
    key = old_servables.key
    for text in (argv, secret.log().encode()):
        assert key not in text
        assert key.hex().encode() not in text
    assert os.fspath(old_servables.key_file).encode() in argv
