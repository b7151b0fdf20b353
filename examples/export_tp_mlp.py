"""Export the `tp_mlp` servables: one 64-256-16 MLP, sharded over 2 ranks and whole.

    python examples/export_tp_mlp.py [--out-dir SERVABLES_DIR]

writes `SERVABLES_DIR/tp_mlp/1/rank_0.mindir`, `rank_1.mindir` (the distributed servable) and
`SERVABLES_DIR/tp_mlp_single/1/mlp.mindir` (the same model in one file, for comparison).
The weights come from a fixed seed. The sharding is Megatron-style, written by hand (automatic
sharding does not compile on CPU): rank r holds columns r*128..r*128+127 of the first matmul
and the same rows of the second; each rank computes its partial sum and `ops.AllReduce` adds
them, so every rank ends with the whole output. A graph with AllReduce needs a communication
group to be built, so the per-rank exports run inside a MindSpore dynamic cluster: this script
starts a scheduler and one process per rank, each a fresh interpreter (which also keeps the
files byte-identical from run to run).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

EXAMPLES_DIR = Path(__file__).resolve().parent
DEFAULT_OUT_DIR = EXAMPLES_DIR / "servables"
RANKS = 2
IN, HIDDEN, OUT = 64, 256, 16
SEED = 11


def weights() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The model's weights and biases: w1 [IN, HIDDEN], b1 [HIDDEN], w2 [HIDDEN, OUT], b2 [OUT]."""
    rng = np.random.default_rng(SEED)
    w1 = (rng.standard_normal((IN, HIDDEN)) / np.sqrt(IN)).astype(np.float32)
    b1 = (rng.standard_normal(HIDDEN) * 0.1).astype(np.float32)
    w2 = (rng.standard_normal((HIDDEN, OUT)) / np.sqrt(HIDDEN)).astype(np.float32)
    b2 = (rng.standard_normal(OUT) * 0.1).astype(np.float32)
    return w1, b1, w2, b2


def _export(out_dir: Path, rank: int | None) -> Path:
    """Export rank `rank`'s shard (inside a cluster) or, with None, the whole model."""
    import mindspore as ms
    from mindir_export import export_mindir
    from mindspore import nn, ops

    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    w1, b1, w2, b2 = weights()
    if rank is not None:
        from mindspore.communication import init

        init()
        part = slice(rank * HIDDEN // RANKS, (rank + 1) * HIDDEN // RANKS)
        w1, b1, w2 = w1[:, part], b1[part], w2[part]
        b2 = b2 / RANKS  # each rank adds half: the AllReduce sums them back

    class Mlp(nn.Cell):  # type: ignore[misc]
        """relu(x @ w1 + b1) @ w2 + b2, with the partial sums added across ranks if sharded."""

        def __init__(self) -> None:
            super().__init__()
            self.w1 = ms.Parameter(ms.Tensor(w1), name="w1")
            self.b1 = ms.Parameter(ms.Tensor(b1), name="b1")
            self.w2 = ms.Parameter(ms.Tensor(w2), name="w2")
            self.b2 = ms.Parameter(ms.Tensor(b2), name="b2")
            self.relu = ops.ReLU()
            self.matmul = ops.MatMul()
            self.all_reduce = ops.AllReduce() if rank is not None else None

        def construct(self, x: ms.Tensor) -> ms.Tensor:
            hidden = self.relu(self.matmul(x, self.w1) + self.b1)
            partial = self.matmul(hidden, self.w2) + self.b2
            if self.all_reduce is not None:
                return self.all_reduce(partial)
            return partial

    example = ms.Tensor(shape=[None, IN], dtype=ms.float32)
    if rank is None:
        return export_mindir(Mlp(), example, path=out_dir / "tp_mlp_single" / "1" / "mlp.mindir")
    return export_mindir(Mlp(), example, path=out_dir / "tp_mlp" / "1" / f"rank_{rank}.mindir")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def export_all(out_dir: Path) -> None:
    """Export the whole model here and each shard in a cluster of fresh processes."""
    port = _free_port()
    script = str(Path(__file__).resolve())
    base = {**os.environ, "MS_SCHED_HOST": "127.0.0.1", "MS_SCHED_PORT": str(port),
            "MS_WORKER_NUM": str(RANKS)}  # fmt: skip
    processes = [
        subprocess.Popen(
            [sys.executable, script, "--out-dir", str(out_dir), "--role", "scheduler"],
            env={**base, "MS_ROLE": "MS_SCHED"},
        )
    ]
    for rank in range(RANKS):
        env = {**base, "MS_ROLE": "MS_WORKER", "MS_NODE_ID": str(rank)}
        command = [sys.executable, script, "--out-dir", str(out_dir), "--rank", str(rank)]
        processes.append(subprocess.Popen(command, env=env))
    whole = subprocess.run(
        [sys.executable, script, "--out-dir", str(out_dir), "--whole"], check=False
    )
    codes = [process.wait(timeout=300) for process in processes]
    if whole.returncode or any(codes):
        raise SystemExit(f"export failed: exit codes {[whole.returncode, *codes]}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    parser.add_argument("--rank", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--whole", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--role", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "scheduler":
        from mindspore.communication import init

        init()
    elif args.rank is not None or args.whole:
        print(f"wrote {_export(args.out_dir, None if args.whole else args.rank)}")
    else:
        export_all(args.out_dir)


if __name__ == "__main__":
    main()
