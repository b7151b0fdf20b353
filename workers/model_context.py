"""MindSpore Serving's model context classes (`register.Context`, `register.CPUDeviceInfo`, ...).

They are validated as in MindSpore Serving so that configs using them load unchanged. They
tuned MindSpore Lite and the Ascend ATC compiler; msq runs models with MindSpore itself, which
has no such per-model options, so a worker logs that they are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

_PRECISION = ("origin", "fp16")


def _check_options(
    kind: str, given: Mapping[str, object], allowed: Mapping[str, tuple[str, ...]]
) -> None:
    """Every option must be known and a string (one of the allowed values, when listed)."""
    for name, value in given.items():
        if name not in allowed:
            raise RuntimeError(f"Set {kind} failed, unsupported option {name}")
        if not isinstance(value, str):
            raise RuntimeError(f"{kind} option '{name}' must be a str, not {type(value).__name__}")
        if allowed[name] and value not in allowed[name]:
            raise RuntimeError(
                f"{kind} option '{name}' can only be one of {', '.join(allowed[name])}, "
                f"not '{value}'"
            )


class DeviceInfoContext:
    """Options of one device type; see `CPUDeviceInfo`, `GPUDeviceInfo`, `AscendDeviceInfo`."""

    device_type = ""
    allowed_options: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, **options: str) -> None:
        _check_options(f"{self.device_type} device info", options, self.allowed_options)
        self.options = dict(options)


class CPUDeviceInfo(DeviceInfoContext):
    """CPU options: `precision_mode` "origin" or "fp16"."""

    device_type = "cpu"
    allowed_options: ClassVar[dict[str, tuple[str, ...]]] = {"precision_mode": _PRECISION}


class GPUDeviceInfo(DeviceInfoContext):
    """GPU options: `precision_mode` "origin" or "fp16"."""

    device_type = "gpu"
    allowed_options: ClassVar[dict[str, tuple[str, ...]]] = {"precision_mode": _PRECISION}


class AscendDeviceInfo(DeviceInfoContext):
    """Ascend options of the ATC tool (`input_format`, `precision_mode`, ...)."""

    device_type = "ascend"
    allowed_options: ClassVar[dict[str, tuple[str, ...]]] = {
        "insert_op_cfg_path": (),
        "input_format": ("ND", "NCHW", "NHWC", "CHWN", "NC1HWC0", "NHWC1C0"),
        "input_shape": (),
        "output_type": ("FP32", "FP16", "UINT8"),
        "precision_mode": (
            "force_fp16",
            "allow_fp32_to_fp16",
            "must_keep_origin_dtype",
            "allow_mix_precision",
        ),
        "op_select_impl_mode": ("high_performance", "high_precision"),
        "fusion_switch_config_path": (),
        "buffer_optimize_mode": (
            "l1_optimize",
            "l2_optimize",
            "off_optimize",
            "l1_and_l2_optimize",
        ),
    }


class Context:
    """Run-time options of a model: `thread_num`, `thread_affinity_core_list`,
    `enable_parallel`, and per-device options added with `append_device_info`."""

    def __init__(self, **options: object) -> None:
        checks = {
            "thread_num": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
            "thread_affinity_core_list": lambda v: (
                isinstance(v, (list, tuple))
                and all(isinstance(core, int) and core >= 0 for core in v)
            ),
            "enable_parallel": lambda v: isinstance(v, bool),
        }
        for name, value in options.items():
            if name not in checks:
                raise RuntimeError(f"Set context failed, unsupported option {name}")
            if not checks[name](value):
                raise RuntimeError(f"Set context failed, invalid value {value!r} of {name}")
        self.options = dict(options)
        self.device_infos: list[DeviceInfoContext] = []

    def append_device_info(self, device_info: DeviceInfoContext) -> None:
        """Add the options of one device type (at most one per type)."""
        if not isinstance(device_info, DeviceInfoContext):
            raise RuntimeError(
                "Parameter 'device_info' should be CPUDeviceInfo, GPUDeviceInfo or "
                f"AscendDeviceInfo, not {type(device_info).__name__}"
            )
        if any(info.device_type == device_info.device_type for info in self.device_infos):
            raise RuntimeError(
                f"Device info of type {device_info.device_type} has already been appended"
            )
        self.device_infos.append(device_info)


class AclOptions:
    """Deprecated form of `Context` with an `AscendDeviceInfo`."""

    def __init__(self, **options: str) -> None:
        self.context = Context()
        self.context.append_device_info(AscendDeviceInfo(**options))


class GpuOptions:
    """Deprecated form of `Context` with a `GPUDeviceInfo`."""

    def __init__(self, **options: str) -> None:
        self.context = Context()
        self.context.append_device_info(GPUDeviceInfo(**options))
