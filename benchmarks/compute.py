"""The scenarios' work done in-process, without msq: what the floors and the peer run.

`load_compute(scenario)` returns a function from a list of instances (input name -> value)
to a list of outputs (output name -> NumPy array), doing what the servable does: the add model
once per instance, the MLP once per batch, PNG decoding then the digits model, or an echo.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mindspore as ms
import numpy as np
from mindspore import nn
from PIL import Image

from msq.benchmarks.scenarios import DEFAULT_THREADS, SCENARIOS, InstanceValues, Scenario

Compute = Callable[[list[InstanceValues]], list[dict[str, np.ndarray]]]
Graph = Callable[..., np.ndarray]


def load_graph(path: Path, threads: int = DEFAULT_THREADS) -> Graph:
    """Load a MindIR file; the result maps NumPy inputs to the first output as NumPy."""
    ms.device_context.cpu.op_tuning.threads_num(threads)
    cell = nn.GraphCell(ms.load(str(path)))

    def run(*inputs: np.ndarray) -> np.ndarray:
        output: Any = cell(*(ms.from_numpy(value) for value in inputs))  # as msq's workers
        if isinstance(output, (tuple, list)):
            output = output[0]
        return np.asarray(output.asnumpy())

    return run


def _per_instance(graph: Graph, inputs: tuple[str, ...], output: str) -> Compute:
    def compute(instances: list[InstanceValues]) -> list[dict[str, np.ndarray]]:
        return [{output: graph(*(item[name] for name in inputs))} for item in instances]

    return compute


def _batched(graph: Graph, name: str, output: str) -> Compute:
    def compute(instances: list[InstanceValues]) -> list[dict[str, np.ndarray]]:
        batch = np.stack([np.asarray(item[name]) for item in instances])
        return [{output: row} for row in graph(batch)]

    return compute


def _digits(graph: Graph, name: str) -> Compute:
    """What the digits servable's `predict_image` does: PNG -> 0..16 pixels -> model ->
    label, top-3 softmax scores and classes."""

    def pixels(png: object) -> np.ndarray:
        with Image.open(io.BytesIO(bytes(png))) as image:  # type: ignore[call-overload]
            grey = np.asarray(image.convert("L"), dtype=np.float32)
        return grey.reshape(64) * np.float32(16.0 / 255.0)

    def top3(logits: np.ndarray) -> dict[str, np.ndarray]:
        shifted = np.exp(logits - logits.max())
        probabilities = shifted / shifted.sum()
        classes = np.argsort(-probabilities, kind="stable")[:3].astype(np.int64)
        scores = probabilities[classes].astype(np.float32)
        return {"label": np.asarray(classes[0]), "scores": scores, "classes": classes}

    def compute(instances: list[InstanceValues]) -> list[dict[str, np.ndarray]]:
        return [top3(row) for row in graph(np.stack([pixels(item[name]) for item in instances]))]

    return compute


def _echo(name: str, output: str) -> Compute:
    def compute(instances: list[InstanceValues]) -> list[dict[str, np.ndarray]]:
        return [{output: np.asarray(item[name])} for item in instances]

    return compute


def load_compute(scenario: Scenario | str, threads: int = DEFAULT_THREADS) -> Compute:
    """The in-process work of a scenario, its model loaded and warmed up."""
    if isinstance(scenario, str):
        scenario = SCENARIOS[scenario]
    sample = scenario.instances(1)
    inputs = tuple(sample[0])
    output = scenario.outputs[0]
    path = scenario.model_path
    if path is None:
        compute = _echo(inputs[0], output)
    elif scenario.name == "tiny":
        compute = _per_instance(load_graph(path, threads), inputs, output)
    elif scenario.name == "image":
        compute = _digits(load_graph(path, threads), inputs[0])
    else:
        compute = _batched(load_graph(path, threads), inputs[0], output)
    compute(sample)
    return compute
