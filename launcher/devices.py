"""Device lists (`cpu`, `cpu:0,1`, `gpu:0,1`, `ascend:0-7`): one device per entry, and the
`msq-worker --device` each entry gets. `msq.launcher.settings` checks a deployment's lists with
`parse_devices`; `msq.launcher.plan`, `msq-worker` and `msq-agent` expand them."""

from __future__ import annotations

import re

_DEVICES = re.compile(r"(cpu|gpu|ascend)(?::(\d+(?:-\d+)?(?:,\d+(?:-\d+)?)*))?", re.IGNORECASE)


def parse_devices(text: str) -> tuple[str, ...]:
    """`cpu`, `cpu:0,1`, `gpu:0,1`, `ascend:0-7` → one `KIND:N` per device (`cpu` alone: one)."""
    match = _DEVICES.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"invalid devices {text!r}: use cpu, cpu:0,1, gpu:0,1 or ascend:0-7 (ids >= 0)"
        )
    kind, ids = match.group(1).lower(), match.group(2)
    if ids is None:
        if kind != "cpu":
            raise ValueError(f"invalid devices {text!r}: name the {kind} ids, e.g. {kind}:0")
        return ("cpu",)
    numbers: list[int] = []
    for part in ids.split(","):
        first, _, last = part.partition("-")
        span = range(int(first), int(last or first) + 1)
        if not span:
            raise ValueError(f"invalid devices {text!r}: the range {part} is empty")
        numbers.extend(span)
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"invalid devices {text!r}: a device id is repeated")
    return tuple(f"{kind}:{number}" for number in numbers)


def worker_device(device: str) -> str:
    """The `msq-worker --device` of one `parse_devices` entry (CPU "devices" share the CPU)."""
    return "cpu" if device.startswith("cpu") else device
