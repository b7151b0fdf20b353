"""`declare_servable`: MindSpore Serving's declaration of a distributed model, and its files.

A distributed servable's version folder holds one MindIR file per rank, named by `rank_file`:
`rank_0.mindir`, `rank_1.mindir`, ... (MindSpore Serving had no convention: its agents were
given the paths). A servable declares one distributed model and no other model.
"""

from __future__ import annotations

from collections.abc import Sequence

from msq.workers.definition import Model, ServableConfigError, current_servable


def rank_file(rank: int) -> str:
    """The name of rank `rank`'s model file in the version folder."""
    return f"rank_{rank}.mindir"


class DistributedModel(Model):
    """A model sharded over `rank_size` ranks in `stage_size` pipeline stages; returned by
    `declare_servable`, used in `add_stage` like any declared model."""

    def __init__(
        self,
        rank_size: int,
        stage_size: int,
        *,
        with_batch_dim: bool,
        without_batch_dim_inputs: tuple[int, ...],
        enable_pipeline_infer: bool,
    ) -> None:
        files = tuple(rank_file(rank) for rank in range(rank_size))
        super().__init__(
            files,
            "mindir",
            with_batch_dim=with_batch_dim,
            without_batch_dim_inputs=without_batch_dim_inputs,
        )
        self.rank_size = rank_size
        self.stage_size = stage_size
        self.enable_pipeline_infer = enable_pipeline_infer

    @property
    def model_key(self) -> str:
        """The model's name in messages: the servable's files are its ranks' files."""
        return f"distributed({self.rank_size} ranks)"


def _int(name: str, value: object, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ServableConfigError(f"Parameter '{name}' should be int, but actually {type(value)}")
    if value < minimum:
        raise ServableConfigError(f"Parameter '{name}' should be >= {minimum}")
    return value


def _bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ServableConfigError(f"Parameter '{name}' should be bool, but actually {type(value)}")
    return value


def _indices(value: object) -> tuple[int, ...]:
    """`without_batch_dim_inputs`, checked with MindSpore Serving's messages."""
    if value is None:
        return ()
    listed = (value,) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(listed, (tuple, list)):
        raise ServableConfigError(
            "Parameter 'without_batch_dim_inputs' should be int or tuple/list of int, but "
            f"actually {type(value)}"
        )
    seen: list[int] = []
    for item in listed:
        if item in seen:
            raise ServableConfigError(
                f"The item value '{item}' in parameter 'without_batch_dim_inputs' should not be "
                "repeated"
            )
        prefix = f"The item value '{item}' in parameter 'without_batch_dim_inputs'"
        if not isinstance(item, int) or isinstance(item, bool):
            raise ServableConfigError(f"{prefix} should be int, but actually {type(item)}")
        if item < 0:
            raise ServableConfigError(f"{prefix} should be >= 0")
        seen.append(item)
    return tuple(sorted(seen))


def declare_servable(
    rank_size: int,
    stage_size: int = 1,
    with_batch_dim: bool = True,
    without_batch_dim_inputs: int | Sequence[int] | None = None,
    enable_pipeline_infer: bool = False,
) -> DistributedModel:
    """Declare the servable's model as sharded over `rank_size` ranks (one file per rank,
    `rank_file`), `stage_size` pipeline stages of `rank_size / stage_size` ranks each.

    The first stage's ranks get every call's inputs, the last rank's outputs are the result.
    msq runs one call at a time through all stages: `enable_pipeline_infer` is accepted and
    has no effect.
    """
    with_batch_dim = _bool("with_batch_dim", with_batch_dim)
    enable_pipeline_infer = _bool("enable_pipeline_infer", enable_pipeline_infer)
    shared = _indices(without_batch_dim_inputs)
    rank_size = _int("rank_size", rank_size, 1)
    stage_size = _int("stage_size", stage_size, 1)
    if rank_size % stage_size:
        raise ServableConfigError(
            f"Parameter 'rank_size' ({rank_size}) should be a multiple of 'stage_size' "
            f"({stage_size})"
        )
    servable = current_servable()
    if servable.models:
        raise ServableConfigError(
            "declare_servable declares the servable's only model: this servable already "
            "declared a model (one distributed model per servable, not mixed with declare_model)"
        )
    model = DistributedModel(
        rank_size,
        stage_size,
        with_batch_dim=with_batch_dim,
        without_batch_dim_inputs=shared,
        enable_pipeline_infer=enable_pipeline_infer,
    )
    servable.models.append(model)
    return model
