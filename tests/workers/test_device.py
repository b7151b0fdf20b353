"""`--device` parsing and MindSpore's device set-up (this machine has no GPU or Ascend)."""

from __future__ import annotations

import os

import pytest

from msq.workers.device import (
    DeviceError,
    DeviceSpec,
    configure_mindspore,
    default_threads,
    parse_device,
)


@pytest.mark.parametrize(
    ("text", "device", "shown", "target"),
    [
        ("cpu", DeviceSpec("cpu"), "cpu", "CPU"),
        ("CPU", DeviceSpec("cpu"), "cpu", "CPU"),
        ("gpu:0", DeviceSpec("gpu", 0), "gpu:0", "GPU"),
        ("GPU:3", DeviceSpec("gpu", 3), "gpu:3", "GPU"),
        ("Ascend:1", DeviceSpec("ascend", 1), "ascend:1", "Ascend"),
        (" ascend:12 ", DeviceSpec("ascend", 12), "ascend:12", "Ascend"),
    ],
)
def test_parse_device(text: str, device: DeviceSpec, shown: str, target: str) -> None:
    assert parse_device(text) == device
    assert str(device) == shown
    assert device.target == target


@pytest.mark.parametrize("text", ["", "gpu", "gpu:", "gpu:-1", "gpu:a", "cpu:0", "tpu:0", "npu"])
def test_parse_device_errors(text: str) -> None:
    with pytest.raises(
        ValueError, match=r"invalid device .*: use cpu, gpu:N or ascend:N \(N >= 0\)"
    ):
        parse_device(text)


def test_default_threads_share_the_cores() -> None:
    cores = len(os.sched_getaffinity(0))
    assert default_threads() == cores
    assert default_threads(cores) == 1
    assert default_threads(cores * 4) == 1


@pytest.mark.parametrize("text", ["gpu:0", "ascend:1"])
def test_unavailable_device_fails_clearly(text: str) -> None:
    device = parse_device(text)
    with pytest.raises(DeviceError, match=f"device {text} is not available: this MindSpore"):
        configure_mindspore(device, threads=1)
