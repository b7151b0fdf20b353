"""MindIR models on a device: loading, input checks, batching with padding, and warm-up.
Encrypted model files are decrypted by MindSpore itself with the servable's `Decryption`.

Each declared model (one file per subgraph) becomes a `LoadedModel`. Its batch geometry comes
from the graph's input shapes (`msq.workers.geometry`): a dynamic batch dim (-1) runs the
allowed sizes (padded up to the smallest that fits), a fixed batch N runs N, and
`with_batch_dim=False` runs one instance per call. Inputs arrive as `Piece`s (one instance, or
the stacked rows of a block, checked once); a batch is filled with one copy of each input's rows
(none when one piece's rows fill a size exactly) and padded with zero rows, which are never
returned: outputs come back as views of the model's outputs (`Segment`). Inputs are checked with
the rule of `msq.proto.validation`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import mindspore as ms
import numpy as np
from google.protobuf.message import DecodeError
from mindspore import nn
from mindspore.train import mind_ir_pb2
from mindspore.train.serialization import _decrypt

from msq.proto.codec import numeric_name
from msq.proto.errors import ErrorKind
from msq.proto.validation import input_mismatch
from msq.workers.decryption import Decryption
from msq.workers.definition import Model, ServableLoadError
from msq.workers.geometry import InputSpec, Shape, batch_geometry
from msq.workers.values import InstanceError, Value

logger = logging.getLogger(__name__)

_DTYPES = {
    "BOOL": "bool",
    "INT8": "int8",
    "UINT8": "uint8",
    "INT16": "int16",
    "UINT16": "uint16",
    "INT32": "int32",
    "UINT32": "uint32",
    "INT64": "int64",
    "UINT64": "uint64",
    "FLOAT16": "float16",
    "FLOAT": "float32",
    "DOUBLE": "float64",
    "FLOAT64": "float64",
}


class Piece(NamedTuple):
    """Model inputs of `rows` instances: each input with the rows first, except shared inputs
    (`without_batch_dim_inputs`: one value for every row)."""

    rows: int
    arrays: tuple[np.ndarray, ...]


class Segment(NamedTuple):
    """The outputs of rows [start, stop) of piece `piece` (views with those rows first)."""

    piece: int
    start: int
    stop: int
    outputs: tuple[np.ndarray, ...]


@dataclass(slots=True)
class Subgraph:
    """One graph of a model, the batch sizes it runs, and its outputs once warmed up."""

    cell: Any
    inputs: tuple[InputSpec, ...]
    sizes: tuple[int, ...]
    batched: bool
    outputs: tuple[tuple[str, Shape], ...] | None = None


def _merge(first: Shape, other: Shape) -> Shape:
    """`first` with -1 where `other` differs."""
    return tuple(a if a == b else -1 for a, b in zip(first, other, strict=True))


class ModelDecryptionError(ServableLoadError):
    """An encrypted model file without its key, or with another key or mode."""


def _load_failure(path: Path, exc: Exception, decryption: Decryption | None) -> ServableLoadError:
    """Why a model file did not load, in words (not MindSpore's, about its own arguments)."""
    if decryption is not None:
        return ModelDecryptionError(
            f"cannot decrypt model file {path} with the given key in {decryption.mode} mode: "
            "the key or mode differs from the export's, or the file is not encrypted or damaged"
        )
    if "may be encrypted" in str(exc):  # MindSpore's words for a file it sees is encrypted
        return ModelDecryptionError(
            f"cannot load model file {path}: it is encrypted; give its key with --dec-key-file "
            "(and --dec-mode unless AES-GCM)"
        )
    return ServableLoadError(f"cannot load model file {path}: {exc}")


class LoadedModel:
    """A declared model loaded on the current device (one graph per subgraph file)."""

    def __init__(
        self,
        model: Model,
        version_dir: Path,
        dynamic_sizes: tuple[int, ...],
        decryption: Decryption | None = None,
    ) -> None:
        self.model = model
        self.subgraphs = [
            self._load(version_dir / name, dynamic_sizes, decryption) for name in model.files
        ]

    @property
    def key(self) -> str:
        """The model's name in messages."""
        return self.model.model_key

    def _load(
        self, path: Path, dynamic_sizes: tuple[int, ...], decryption: Decryption | None
    ) -> Subgraph:
        if not path.is_file():
            raise ServableLoadError(f"model file {path} does not exist")
        proto = mind_ir_pb2.ModelProto()
        try:
            cell = self._cell(path, decryption)
            if decryption is None:
                proto.ParseFromString(path.read_bytes())
            else:
                proto.ParseFromString(_decrypt(str(path), decryption.key, len(decryption.key),
                                               decryption.mode))  # fmt: skip
        except (RuntimeError, ValueError, OSError, DecodeError) as exc:
            raise _load_failure(path, exc, decryption) from exc
        dims = [self._input(path, k, value) for k, value in enumerate(proto.graph.input)]
        geometry = batch_geometry(
            path.name,
            dims,
            with_batch_dim=self.model.with_batch_dim,
            shared=self.model.without_batch_dim_inputs,
            dynamic_sizes=dynamic_sizes,
        )
        return Subgraph(cell, geometry.inputs, geometry.sizes, geometry.batched)

    def _cell(self, path: Path, decryption: Decryption | None) -> Any:
        """The graph of a model file, loaded on this process's device."""
        if decryption is None:
            return nn.GraphCell(ms.load(str(path)))
        return nn.GraphCell(ms.load(str(path), dec_key=decryption.key, dec_mode=decryption.mode))

    @staticmethod
    def _input(path: Path, index: int, value: Any) -> tuple[str, Shape]:
        if len(value.tensor) != 1:
            raise ServableLoadError(f"{path.name}: input {index} is not a tensor")
        tensor = value.tensor[0]
        type_name = mind_ir_pb2.TensorProto.DataType.Name(tensor.data_type)
        if type_name not in _DTYPES:
            raise ServableLoadError(f"{path.name}: input {index} has unsupported type {type_name}")
        return str(_DTYPES[type_name]), tuple(int(dim) for dim in tensor.dims)

    def subgraph(self, index: int) -> Subgraph:
        """Subgraph `index`; RuntimeError if the model has no such subgraph."""
        if not 0 <= index < len(self.subgraphs):
            raise RuntimeError(f"model {self.key} has no subgraph {index}")
        return self.subgraphs[index]

    # ------------------------------------------------------------------------------ running

    def prepare(self, values: Sequence[Value], subgraph: int) -> Piece:
        """One instance's inputs as a one-row piece, checked against the model
        (`msq.proto.validation`'s rule: dtype and shape, never reshaped); raise
        `InstanceError` if they differ."""
        graph = self.subgraph(subgraph)
        arrays = self._checked(values, graph, stacked=False)
        return Piece(
            1,
            tuple(
                array if spec.shared else array[np.newaxis]
                for array, spec in zip(arrays, graph.inputs, strict=True)
            ),
        )

    def prepare_rows(self, columns: Sequence[Value], count: int, subgraph: int) -> Piece:
        """`count` instances' inputs stacked as columns (rows first), checked once for all of
        them as `prepare` checks one (the messages name a row's shape)."""
        return Piece(count, self._checked(columns, self.subgraph(subgraph), stacked=True))

    def _checked(
        self, values: Sequence[Value], graph: Subgraph, *, stacked: bool
    ) -> tuple[np.ndarray, ...]:
        specs = graph.inputs
        if len(values) != len(specs):
            raise InstanceError(
                ErrorKind.MODEL_ERROR,
                f"model {self.key} takes {len(specs)} inputs, the method passed {len(values)}",
            )
        return tuple(
            self._check(k, value, spec, stacked)
            for k, (value, spec) in enumerate(zip(values, specs, strict=True))
        )

    def _check(self, index: int, value: Value, spec: InputSpec, stacked: bool) -> np.ndarray:
        if not isinstance(value, np.ndarray):
            kind = "string" if isinstance(value, str) else "bytes"
            raise InstanceError(
                ErrorKind.INVALID_INPUT,
                f"Given model input {index} is {kind}, not the data type {spec.dtype} defined "
                f"in model {self.key}",
            )
        dtype = numeric_name(value.dtype) or str(value.dtype)  # a table look-up
        if stacked and not spec.shared:
            tensor = (dtype, value.shape[1:], value.nbytes // len(value))
        else:
            tensor = (dtype, value.shape, value.nbytes)
        problem = input_mismatch(str(index), tensor, (spec.dtype, spec.shape), model=self.key)
        if problem is not None:
            raise InstanceError(ErrorKind.INVALID_INPUT, problem)
        return value

    def run(self, instances: Sequence[Sequence[Value]], subgraph: int) -> list[tuple[Value, ...]]:
        """Check and run instances (`Model.call`); one bad instance fails the call."""
        pieces = [self.prepare(values, subgraph) for values in instances]
        return [
            tuple(output[0] for output in segment.outputs)
            for segment in self.run_pieces(pieces, subgraph)
        ]

    def run_pieces(self, pieces: Sequence[Piece], subgraph: int) -> list[Segment]:
        """Run prepared pieces in batches of the model's sizes: the outputs of every piece's
        rows as `Segment`s, in piece and row order (a piece longer than the largest size, or
        cut by a batch boundary, has several)."""
        graph = self.subgraph(subgraph)
        if not graph.batched:
            return [
                Segment(
                    index,
                    row,
                    row + 1,
                    tuple(
                        o[np.newaxis]
                        for o in self._call(graph, [a[row, ...] for a in piece.arrays])
                    ),
                )
                for index, piece in enumerate(pieces)
                for row in range(piece.rows)
            ]
        groups: dict[tuple[object, ...], list[int]] = {}
        for index, piece in enumerate(pieces):
            groups.setdefault(self._batch_key(graph, piece), []).append(index)
        largest = graph.sizes[-1]
        segments: list[Segment] = []
        for indices in groups.values():
            batch: list[tuple[int, int, int]] = []  # (piece, start, stop)
            filled = 0
            for index in indices:
                start, count = 0, pieces[index].rows
                while start < count:
                    stop = min(count, start + largest - filled)
                    batch.append((index, start, stop))
                    filled += stop - start
                    start = stop
                    if filled == largest:
                        segments.extend(self._run_batch(graph, pieces, batch))
                        batch, filled = [], 0
            if batch:
                segments.extend(self._run_batch(graph, pieces, batch))
        segments.sort(key=lambda segment: (segment.piece, segment.start))
        return segments

    @staticmethod
    def _batch_key(graph: Subgraph, piece: Piece) -> tuple[object, ...]:
        """Pieces batch together when their row shapes and shared inputs are equal."""
        return tuple(
            (array.dtype.name, array.shape, array.tobytes()) if spec.shared else array.shape[1:]
            for array, spec in zip(piece.arrays, graph.inputs, strict=True)
        )

    def _run_batch(
        self, graph: Subgraph, pieces: Sequence[Piece], batch: list[tuple[int, int, int]]
    ) -> list[Segment]:
        """One run of the graph on the rows of `batch`, padded with zero rows up to the
        smallest size that fits: each input copied once into its padded array, or passed as
        it is when one piece's rows fill a size exactly."""
        count = sum(stop - start for _, start, stop in batch)
        size = next(size for size in graph.sizes if size >= count)
        whole = len(batch) == 1 and count == size
        arrays = []
        for k, spec in enumerate(graph.inputs):
            first = pieces[batch[0][0]].arrays[k]
            if spec.shared:
                arrays.append(first)
            elif whole:
                arrays.append(first[batch[0][1] : batch[0][2]])
            else:
                padded = np.empty((size, *first.shape[1:]), dtype=first.dtype)
                offset = 0
                for index, start, stop in batch:
                    padded[offset : offset + stop - start] = pieces[index].arrays[k][start:stop]
                    offset += stop - start
                padded[count:] = 0
                arrays.append(padded)
        outputs = self._call(graph, arrays)
        for j, output in enumerate(outputs):
            if output.ndim == 0 or output.shape[0] != size:
                raise RuntimeError(
                    f"model {self.key} output {j} has shape {list(output.shape)}, without the "
                    f"batch dim of size {size}"
                )
        segments = []
        offset = 0
        for index, start, stop in batch:
            rows = slice(offset, offset + stop - start)
            segments.append(Segment(index, start, stop, tuple(o[rows] for o in outputs)))
            offset += stop - start
        return segments

    def _call(self, graph: Subgraph, arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
        """One run of a graph on whole (padded) arrays: its outputs. The inputs are lent to
        MindSpore without a copy (`from_numpy`: ~1 µs against ~20 for `Tensor(array)`, and
        ~10 % less CPU per call of the mlp benchmark model at batch 64)."""
        result = graph.cell(*(ms.from_numpy(array) for array in arrays))
        outputs = result if isinstance(result, (tuple, list)) else (result,)
        return tuple(output.asnumpy() for output in outputs)

    # ------------------------------------------------------------------------------ warm-up

    def warm_up(self) -> None:
        """Run every subgraph at every batch size once (new shapes compile on first use) and
        record each output's dtype and per-instance shape."""
        for index, graph in enumerate(self.subgraphs):
            if any(-1 in spec.shape for spec in graph.inputs):
                logger.info("%s subgraph %d: variable input shapes, no warm-up", self.key, index)
                continue
            for size in graph.sizes:
                zeros = tuple(
                    np.zeros(spec.shape if spec.shared else (size, *spec.shape), spec.dtype)
                    for spec in graph.inputs
                )
                try:
                    first = self.run_pieces([Piece(size, zeros)], index)[0]
                except RuntimeError as exc:
                    raise ServableLoadError(
                        f"warm-up of model {self.key} subgraph {index} at batch size {size} "
                        f"failed: {exc}"
                    ) from exc
                specs = tuple((output.dtype.name, output.shape[1:]) for output in first.outputs)
                if graph.outputs is not None:
                    specs = tuple(
                        (dtype, _merge(old, new))
                        for (dtype, new), (_, old) in zip(specs, graph.outputs, strict=True)
                    )
                graph.outputs = specs
