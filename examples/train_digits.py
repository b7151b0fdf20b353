"""Train the `digits` servable's classifier on scikit-learn's 8x8 digits and export it (MindIR).

A 64-64-10 MLP that takes pixels in the dataset's own units (0..16, scaled by 1/16 inside the
network) and returns 10 logits. Training is deterministic (fixed seeds, fixed split, fixed batch
order); the graph is exported with a dynamic batch dimension, `[None, 64]` float32. Next to the
model it writes `metrics.json`: the held-out accuracy and how the held-out split is made.

    python examples/train_digits.py [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import mindspore as ms
import numpy as np
from mindir_export import export_mindir
from mindspore import nn
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

MODEL_FILE = "digits_mlp.mindir"
METRICS_FILE = "metrics.json"
DEFAULT_OUT_DIR = Path(__file__).resolve().parent / "servables" / "digits" / "1"

PIXELS = 64
CLASSES = 10
HIDDEN = 64
PIXEL_MAX = 16.0  # load_digits pixel values are integers 0..16
SEED = 0
SPLIT_RANDOM_STATE = 0
TEST_SIZE = 0.25
EPOCHS = 40
BATCH_SIZE = 32
LEARNING_RATE = 0.01


class DigitsMLP(nn.Cell):  # type: ignore[misc]
    """logits = MLP(pixels / 16) for flattened 8x8 digits in the dataset's units (0..16)."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Dense(PIXELS, HIDDEN, activation="relu")
        self.logits = nn.Dense(HIDDEN, CLASSES)

    def construct(self, pixels: ms.Tensor) -> ms.Tensor:
        return self.logits(self.hidden(pixels / PIXEL_MAX))


def split_digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The train/held-out split recorded in metrics.json: (x_train, x_test, y_train, y_test)."""
    digits = load_digits()
    parts = train_test_split(
        digits.data.astype(np.float32),
        digits.target.astype(np.int32),
        test_size=TEST_SIZE,
        random_state=SPLIT_RANDOM_STATE,
        stratify=digits.target,
    )
    x_train, x_test, y_train, y_test = parts
    return x_train, x_test, y_train, y_test


def train(x_train: np.ndarray, y_train: np.ndarray) -> DigitsMLP:
    """Train a fresh `DigitsMLP` with Adam on shuffled mini-batches, deterministically."""
    ms.set_seed(SEED)
    net = DigitsMLP()
    loss_fn = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    optimizer = nn.AdamWeightDecay(net.trainable_params(), learning_rate=LEARNING_RATE)

    def forward(pixels: ms.Tensor, labels: ms.Tensor) -> ms.Tensor:
        return loss_fn(net(pixels), labels)

    grad_fn = ms.value_and_grad(forward, None, optimizer.parameters)

    @ms.jit  # type: ignore[untyped-decorator]
    def step(pixels: ms.Tensor, labels: ms.Tensor) -> ms.Tensor:
        loss, grads = grad_fn(pixels, labels)
        optimizer(grads)
        return loss

    order = np.random.default_rng(SEED)
    for _ in range(EPOCHS):
        batches = np.array_split(order.permutation(len(x_train)), len(x_train) // BATCH_SIZE)
        for batch in batches:
            step(ms.Tensor(x_train[batch]), ms.Tensor(y_train[batch]))
    return net


def count_correct(net: nn.Cell, pixels: np.ndarray, labels: np.ndarray) -> int:
    """How many rows of `pixels` have their arg-max logit equal to their label."""
    logits = net(ms.Tensor(pixels)).asnumpy()
    return int(np.sum(logits.argmax(axis=1) == labels))


def train_and_export(out_dir: Path) -> float:
    """Train, export `digits_mlp.mindir` and `metrics.json` into `out_dir`; return test accuracy."""
    ms.set_context(mode=ms.GRAPH_MODE)
    x_train, x_test, y_train, y_test = split_digits()
    net = train(x_train, y_train)
    net.set_train(False)
    test_correct = count_correct(net, x_test, y_test)
    test_accuracy = test_correct / len(x_test)
    dynamic_batch = ms.Tensor(shape=[None, PIXELS], dtype=ms.float32)
    export_mindir(net, dynamic_batch, path=out_dir / MODEL_FILE)
    metrics = {
        "model_file": MODEL_FILE,
        "dataset": "sklearn.datasets.load_digits",
        "input": "float32 [batch, 64]: 8x8 pixels, row-major, values 0..16",
        "split": {
            "function": "sklearn.model_selection.train_test_split",
            "test_size": TEST_SIZE,
            "random_state": SPLIT_RANDOM_STATE,
            "stratify": "target",
        },
        "train_samples": len(x_train),
        "test_samples": len(x_test),
        "test_correct": test_correct,
        "test_accuracy": test_accuracy,
    }
    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return test_accuracy


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    args = parser.parse_args(argv)
    test_accuracy = train_and_export(args.out_dir)
    print(f"digits test accuracy: {test_accuracy:.4f}")
    print(f"wrote {args.out_dir / MODEL_FILE} and {args.out_dir / METRICS_FILE}")


if __name__ == "__main__":
    main()
