"""The example servables (examples/servables): their MindIR models, Python stages and exports.

Models are loaded as a worker loads them (`mindspore.load` + `nn.GraphCell`); the digits model
is checked against the held-out split recorded in its `metrics.json`. The servable configs are
imported as a worker imports them, inside `msq.workers.definition.collecting`.
"""

from __future__ import annotations

import importlib.util
import io
import json
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from types import ModuleType
from typing import Any

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn
from mindspore.train import mind_ir_pb2
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from msq.workers.definition import ServableDef, collecting

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SERVABLES = EXAMPLES / "servables"
ADD_MODEL = SERVABLES / "add" / "1" / "tensor_add.mindir"
DIGITS_MODEL = SERVABLES / "digits" / "1" / "digits_mlp.mindir"
DIGITS_METRICS = SERVABLES / "digits" / "1" / "metrics.json"
PNG_TOLERANCE = 8 / 255 + 1e-6  # 0..16 -> 8-bit grey -> 0..16 loses at most half a grey level


def graph_cell(path: Path) -> Any:
    return nn.GraphCell(ms.load(str(path)))


def mindir(path: Path) -> Any:
    model = mind_ir_pb2.ModelProto()
    model.ParseFromString(path.read_bytes())
    return model


def load_config(servable: str) -> tuple[ModuleType, ServableDef]:
    """Import a servable's config the way a worker does, collecting what it declares."""
    path = SERVABLES / servable / "servable_config.py"
    spec = importlib.util.spec_from_file_location(f"{servable}_servable_config", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with collecting(servable) as definition:
        spec.loader.exec_module(module)
    return module, definition


def png(pixels: np.ndarray, *, scale: int = 1, mode: str = "L") -> bytes:
    """An 8x8 digit (0..16) as a PNG of 8-bit grey levels, each pixel `scale` x `scale`."""
    levels = np.round(pixels.reshape(8, 8) * 255 / 16).astype(np.uint8)
    levels = np.kron(levels, np.ones((scale, scale), dtype=np.uint8))
    buffer = io.BytesIO()
    Image.fromarray(levels, "L").convert(mode).save(buffer, "PNG")
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that announces `width` x `height` grey pixels and holds none."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def metrics() -> dict[str, Any]:
    recorded: dict[str, Any] = json.loads(DIGITS_METRICS.read_text(encoding="utf-8"))
    return recorded


@pytest.fixture(scope="module")
def held_out(metrics: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The held-out digits of the split recorded in metrics.json: (pixels [n, 64], labels)."""
    digits = load_digits()
    split = metrics["split"]
    assert split["stratify"] == "target"
    _, x_test, _, y_test = train_test_split(
        digits.data.astype(np.float32),
        digits.target,
        test_size=split["test_size"],
        random_state=split["random_state"],
        stratify=digits.target,
    )
    return x_test, y_test


@pytest.fixture(scope="module")
def digits_model() -> Any:
    return graph_cell(DIGITS_MODEL)


@pytest.fixture(scope="module")
def digits_config() -> ModuleType:
    return load_config("digits")[0]


# ------------------------------------------------------------------------------------ add


def test_add_model_sums_exactly() -> None:
    model = graph_cell(ADD_MODEL)
    rng = np.random.default_rng(0)
    pairs = [(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32))] + [
        (
            rng.standard_normal((2, 2)).astype(np.float32) * 1e3,
            rng.standard_normal((2, 2)).astype(np.float32),
        )
        for _ in range(5)
    ]
    for x1, x2 in pairs:
        y = model(ms.Tensor(x1), ms.Tensor(x2)).asnumpy()
        assert y.dtype == np.float32
        np.testing.assert_array_equal(y, x1 + x2)
    np.testing.assert_array_equal(
        model(ms.Tensor(pairs[0][0]), ms.Tensor(pairs[0][1])).asnumpy(), [[2, 2], [2, 2]]
    )


def test_add_model_has_static_2x2_float32_inputs_and_output() -> None:
    graph = mindir(ADD_MODEL).graph
    tensors = [value.tensor[0] for value in (*graph.input, *graph.output)]
    assert len(tensors) == 3
    for tensor in tensors:
        assert list(tensor.dims) == [2, 2]
        assert tensor.data_type == mind_ir_pb2.TensorProto.FLOAT


def test_add_config_declares_quick_start_methods() -> None:
    module, servable = load_config("add")
    (model,) = servable.models
    assert (model.files, model.model_format, model.with_batch_dim) == (
        ("tensor_add.mindir",),
        "mindir",
        False,
    )
    common, cast = servable.methods["add_common"], servable.methods["add_cast"]
    assert common.input_names == cast.input_names == ("x1", "x2")
    assert common.output_names == cast.output_names == ("y",)
    assert [stage.target for stage in common.stages] == [model]
    assert [stage.target for stage in cast.stages] == [module.add_trans_datatype, model]
    x1, x2 = module.add_trans_datatype(
        np.array([[1, 2], [3, 4]], np.int32), np.zeros((2, 2), np.float64)
    )
    assert x1.dtype == x2.dtype == np.float32
    np.testing.assert_array_equal(x1, [[1.0, 2.0], [3.0, 4.0]])


# --------------------------------------------------------------------------------- digits


def test_digits_model_has_a_dynamic_batch_dimension() -> None:
    graph = mindir(DIGITS_MODEL).graph
    (pixels,), (logits,) = graph.input, graph.output
    assert list(pixels.tensor[0].dims) == [-1, 64]
    assert list(logits.tensor[0].dims) == [-1, 10]
    assert DIGITS_MODEL.stat().st_size < 1_000_000


@pytest.mark.parametrize("batch_size", [1, 5, 64])
def test_digits_model_runs_any_batch_size(
    batch_size: int, digits_model: Any, held_out: tuple[np.ndarray, np.ndarray]
) -> None:
    pixels = held_out[0]
    whole = digits_model(ms.Tensor(pixels)).asnumpy()
    logits = digits_model(ms.Tensor(pixels[:batch_size])).asnumpy()
    assert logits.shape == (batch_size, 10)
    np.testing.assert_allclose(logits, whole[:batch_size], rtol=1e-5, atol=1e-5)


def test_digits_model_reproduces_recorded_held_out_accuracy(
    digits_model: Any, held_out: tuple[np.ndarray, np.ndarray], metrics: dict[str, Any]
) -> None:
    pixels, labels = held_out
    predicted = digits_model(ms.Tensor(pixels)).asnumpy().argmax(axis=1)
    correct = int(np.sum(predicted == labels))
    assert len(labels) == metrics["test_samples"] == 450
    assert correct == metrics["test_correct"]
    assert correct / len(labels) == pytest.approx(metrics["test_accuracy"])
    assert metrics["test_accuracy"] > 0.95


def test_digits_config_declares_methods() -> None:
    module, servable = load_config("digits")
    (model,) = servable.models
    assert (model.files, model.with_batch_dim) == (("digits_mlp.mindir",), True)
    for name, preprocess, input_name in (
        ("predict", module.flatten_pixels, "pixels"),
        ("predict_image", module.image_to_pixels, "image"),
    ):
        method = servable.methods[name]
        assert method.input_names == (input_name,)
        assert method.output_names == ("label", "scores", "classes")
        targets = [stage.target for stage in method.stages]
        assert targets == [preprocess, model, module.top_classes]
        assert [stage.batch_size for stage in method.stages] == [None, None, None]


def test_png_of_held_out_digits_decodes_to_their_pixels(
    digits_config: ModuleType, held_out: tuple[np.ndarray, np.ndarray]
) -> None:
    for pixels in held_out[0]:
        decoded = digits_config.image_to_pixels(png(pixels))
        assert decoded.dtype == np.float32
        assert decoded.shape == (64,)
        np.testing.assert_allclose(decoded, pixels, rtol=0, atol=PNG_TOLERANCE)


def test_image_forms_decode_to_the_same_pixels(
    digits_config: ModuleType, held_out: tuple[np.ndarray, np.ndarray]
) -> None:
    pixels = held_out[0][0]
    expected = digits_config.image_to_pixels(png(pixels))
    as_uint8 = np.frombuffer(png(pixels), dtype=np.uint8)  # MindSpore Serving's BYTES value
    for image in (
        as_uint8,
        png(pixels, mode="RGB"),
        png(pixels, mode="RGBA"),
        png(pixels, scale=4),
    ):
        np.testing.assert_array_equal(digits_config.image_to_pixels(image), expected)


def test_png_path_predicts_like_the_array_path(
    digits_config: ModuleType,
    digits_model: Any,
    held_out: tuple[np.ndarray, np.ndarray],
    metrics: dict[str, Any],
) -> None:
    pixels, labels = held_out
    decoded = np.stack([digits_config.image_to_pixels(png(row)) for row in pixels])
    from_png = digits_model(ms.Tensor(decoded)).asnumpy().argmax(axis=1)
    from_arrays = digits_model(ms.Tensor(pixels)).asnumpy().argmax(axis=1)
    assert np.sum(from_png != from_arrays) <= 4  # 8-bit grey moves a few borderline digits
    assert np.mean(from_png == labels) >= metrics["test_accuracy"] - 0.01


def test_flatten_pixels_accepts_8x8_and_64(digits_config: ModuleType) -> None:
    grid = np.arange(64, dtype=np.int32).reshape(8, 8) % 17
    for pixels in (grid, grid.reshape(64).astype(np.float64)):
        row = digits_config.flatten_pixels(pixels)
        assert row.dtype == np.float32
        np.testing.assert_array_equal(row, grid.reshape(64))


@pytest.mark.parametrize(
    ("function", "value", "message"),
    [
        ("flatten_pixels", np.zeros((7, 8), np.float32), "shape [8, 8] or [64], not [7, 8]"),
        ("flatten_pixels", np.zeros((1, 64), np.float32), "not [1, 64]"),
        ("flatten_pixels", np.array("seven"), "pixels must be numeric"),
        ("image_to_pixels", b"not an image", "image cannot be decoded"),
        ("image_to_pixels", b"", "image cannot be decoded"),
        ("image_to_pixels", "text", "image must be bytes, not str"),
        ("image_to_pixels", png_header_only(5000, 5000), "5000x5000 pixels is too large"),
    ],
)
def test_bad_inputs_raise_clear_errors(
    digits_config: ModuleType, function: str, value: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        getattr(digits_config, function)(value)


def test_truncated_png_raises_a_clear_error(
    digits_config: ModuleType, held_out: tuple[np.ndarray, np.ndarray]
) -> None:
    image = png(held_out[0][0])
    for end in (8, 20, 40, len(image) // 2):  # in the signature, the header, the pixel data
        with pytest.raises(ValueError, match="image cannot be decoded"):
            digits_config.image_to_pixels(image[:end])


def test_top_classes_gives_sorted_softmax_scores(digits_config: ModuleType) -> None:
    logits = np.arange(10, dtype=np.float32)
    label, scores, classes = digits_config.top_classes(logits)
    softmax = np.exp(np.arange(10.0) - 9) / np.sum(np.exp(np.arange(10.0) - 9))
    assert label == 9 and isinstance(label, np.int64)
    assert classes.dtype == np.int64 and classes.tolist() == [9, 8, 7]
    assert scores.dtype == np.float32 and scores.shape == (3,)
    np.testing.assert_allclose(scores, softmax[[9, 8, 7]], rtol=1e-6)

    label, scores, classes = digits_config.top_classes(np.zeros(10, np.float32))
    assert (label, classes.tolist()) == (0, [0, 1, 2])  # ties: lowest class first
    np.testing.assert_allclose(scores, [0.1, 0.1, 0.1], rtol=1e-6)


def test_top_classes_agrees_with_the_model_output(
    digits_config: ModuleType, digits_model: Any, held_out: tuple[np.ndarray, np.ndarray]
) -> None:
    for logits in digits_model(ms.Tensor(held_out[0][:50])).asnumpy():
        label, scores, classes = digits_config.top_classes(logits)
        assert label == np.argmax(logits) == classes[0]
        assert scores[0] >= scores[1] >= scores[2] > 0
        assert set(classes.tolist()) == set(np.argsort(logits)[-3:].tolist())


# -------------------------------------------------------------------------------- exports


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/make_models.py run into a fresh folder."""
    out_dir = tmp_path_factory.mktemp("servables")
    command = [sys.executable, str(EXAMPLES / "make_models.py"), "--out-dir", str(out_dir)]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert finished.returncode == 0, finished.stderr
    assert "digits test accuracy: " in finished.stdout
    return out_dir


def test_export_add_reproduces_the_committed_file(regenerated: Path) -> None:
    assert (regenerated / "add" / "1" / "tensor_add.mindir").read_bytes() == ADD_MODEL.read_bytes()


@pytest.mark.parametrize(
    "model", ["tp_mlp/1/rank_0.mindir", "tp_mlp/1/rank_1.mindir", "tp_mlp_single/1/mlp.mindir"]
)
def test_export_tp_mlp_reproduces_the_committed_files(regenerated: Path, model: str) -> None:
    assert (regenerated / model).read_bytes() == (SERVABLES / model).read_bytes()


def test_tp_mlp_shards_hold_half_the_weights_each() -> None:
    """Rank r holds columns r*128.. of the first matmul and the same rows of the second."""

    def parameters(path: str) -> dict[str, Any]:  # names are "<graph>:w1", ...
        return {p.name.rpartition(":")[2]: p for p in mindir(SERVABLES / path).graph.parameter}

    whole = parameters("tp_mlp_single/1/mlp.mindir")
    halves = [parameters(f"tp_mlp/1/rank_{rank}.mindir") for rank in range(2)]
    w1 = np.frombuffer(whole["w1"].raw_data, np.float32).reshape(64, 256)
    w2 = np.frombuffer(whole["w2"].raw_data, np.float32).reshape(256, 16)
    for rank, half in enumerate(halves):
        part = slice(rank * 128, (rank + 1) * 128)
        np.testing.assert_array_equal(
            np.frombuffer(half["w1"].raw_data, np.float32).reshape(64, 128), w1[:, part]
        )
        np.testing.assert_array_equal(
            np.frombuffer(half["w2"].raw_data, np.float32).reshape(128, 16), w2[part]
        )
        np.testing.assert_array_equal(
            np.frombuffer(half["b2"].raw_data, np.float32) * 2,
            np.frombuffer(whole["b2"].raw_data, np.float32),
        )


def test_train_digits_reproduces_the_committed_model(regenerated: Path) -> None:
    out_dir = regenerated / "digits" / "1"
    assert json.loads((out_dir / "metrics.json").read_text()) == json.loads(
        DIGITS_METRICS.read_text()
    )
    fresh, committed = mindir(out_dir / "digits_mlp.mindir").graph, mindir(DIGITS_MODEL).graph
    assert [p.name for p in fresh.parameter] == [p.name for p in committed.parameter]
    for new, old in zip(fresh.parameter, committed.parameter, strict=True):
        np.testing.assert_allclose(
            np.frombuffer(new.raw_data, np.float32),
            np.frombuffer(old.raw_data, np.float32),
            atol=1e-5,
        )
