"""The device a worker runs on (`--device cpu | gpu:N | ascend:N`) and MindSpore's set-up."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Literal

DeviceKind = Literal["cpu", "gpu", "ascend"]

_TARGETS: dict[DeviceKind, str] = {"cpu": "CPU", "gpu": "GPU", "ascend": "Ascend"}
_PATTERN = re.compile(r"(?:(cpu)|(gpu|ascend):(\d+))", re.IGNORECASE)


class DeviceError(RuntimeError):
    """The requested device cannot be used."""


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """A device: `cpu`, or a GPU / Ascend device with its index."""

    kind: DeviceKind
    index: int | None = None

    def __str__(self) -> str:
        return self.kind if self.index is None else f"{self.kind}:{self.index}"

    @property
    def target(self) -> str:
        """MindSpore's name of the device type."""
        return _TARGETS[self.kind]


def parse_device(text: str) -> DeviceSpec:
    """Parse `cpu`, `gpu:N` or `ascend:N` (case-insensitive, N >= 0)."""
    match = _PATTERN.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"invalid device {text!r}: use cpu, gpu:N or ascend:N (N >= 0)")
    if match.group(1):
        return DeviceSpec("cpu")
    kind: DeviceKind = "gpu" if match.group(2).lower() == "gpu" else "ascend"
    return DeviceSpec(kind, int(match.group(3)))


def default_threads(workers_on_host: int = 1) -> int:
    """CPU threads per worker so that `workers_on_host` workers share this host's cores."""
    return max(1, len(os.sched_getaffinity(0)) // max(1, workers_on_host))


def configure_mindspore(device: DeviceSpec, threads: int) -> None:
    """Point MindSpore at `device` and cap its CPU kernel threads at `threads`.

    Raises `DeviceError` naming the device when this machine or this MindSpore build
    cannot use it.
    """
    import mindspore as ms  # noqa: PLC0415 - importing MindSpore takes seconds

    if device.kind != "cpu":
        backend = getattr(ms.device_context, device.kind)
        if not backend.is_available():
            raise DeviceError(
                f"device {device} is not available: this MindSpore {ms.__version__} "
                f"installation cannot run on {device.target} (install MindSpore's "
                f"{device.target} build and the device's drivers)"
            )
        count = backend.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceError(f"device {device} does not exist: this machine has {count}")
    try:
        ms.set_device(device.target, device.index)
    except RuntimeError as exc:
        raise DeviceError(f"device {device} cannot be used: {exc}") from exc
    ms.device_context.cpu.op_tuning.threads_num(threads)
