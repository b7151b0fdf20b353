"""A distributed model behind the same interface as `msq.workers.model.LoadedModel`.

Its batch geometry comes from rank 0's file (every rank runs the same shapes); inputs are
checked, batched and padded by `LoadedModel`'s code, and each run of a padded batch is one
`AgentGroup.call`: the same frames to every first-stage rank, the last rank's outputs back.
Warm-up runs every aligned batch size on all ranks (a new shape compiles on every rank).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from msq.workers.decryption import Decryption
from msq.workers.definition import ServableLoadError
from msq.workers.distributed.declare import DistributedModel, rank_file
from msq.workers.distributed.group import AgentGroup, GroupSettings
from msq.workers.model import LoadedModel, Subgraph

if TYPE_CHECKING:
    from msq.workers.servable import LoadedServable

logger = logging.getLogger(__name__)

#: How long one rank may take for a call while warming up (first runs of a shape compile).
WARM_UP_BOUND_S = 120.0


def rank_paths(model: DistributedModel, version_dir: Path) -> list[Path]:
    """Every rank's model file; ServableLoadError naming the missing ones."""
    paths = [version_dir / rank_file(rank) for rank in range(model.rank_size)]
    missing = [path.name for path in paths if not path.is_file()]
    if missing:
        raise ServableLoadError(
            f"distributed model of {model.rank_size} ranks: model files {', '.join(missing)} "
            f"do not exist in {version_dir} (rank r loads {rank_file(0).replace('0', 'r')})"
        )
    return paths


class DistributedLoadedModel(LoadedModel):
    """A `DistributedModel` whose ranks run in an `AgentGroup` (started here)."""

    def __init__(
        self,
        model: DistributedModel,
        version_dir: Path,
        dynamic_sizes: tuple[int, ...],
        decryption: Decryption | None,
        settings: GroupSettings,
    ) -> None:
        if model.stage_size > 1:
            raise ServableLoadError(
                f"declare_servable(stage_size={model.stage_size}): pipeline stages are not "
                "supported by msq; shard the model over ranks of one stage (stage_size=1)"
            )
        self.model = model
        self.rank_size = model.rank_size
        self._bound_s: float | None = None
        paths = rank_paths(model, version_dir)
        # The geometry is rank 0's: the worker reads its header only, the ranks load the files.
        self.subgraphs = [self._load(paths[0], dynamic_sizes, decryption)]
        if settings.rank_table_ranks not in (None, model.rank_size):
            raise ServableLoadError(
                f"the rank table has {settings.rank_table_ranks} ranks, the servable declares "
                f"rank_size={model.rank_size}"
            )
        self.group = AgentGroup(paths, settings)
        self.group.start()
        self.group.on_ready = self.warm_up

    def serve_with(self, suspend: Callable[[str], None], resume: Callable[[], None]) -> None:
        """While serving: `suspend(reason)` when the group is lost, `resume()` once it is
        up and warmed up again."""

        def ready() -> None:
            self.warm_up()
            resume()

        self.group.on_lost = suspend
        self.group.on_ready = ready

    def _cell(self, path: Path, decryption: Decryption | None) -> Any:
        """No graph here: the ranks load the files."""
        return None

    def _call(self, graph: Subgraph, arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
        return self.group.call(arrays, self._bound_s)

    def warm_up(self) -> None:
        """Run every batch size on all ranks (with a bound long enough for compiling)."""
        self._bound_s = WARM_UP_BOUND_S
        try:
            super().warm_up()
        finally:
            self._bound_s = None
        logger.info("%s: warmed up on %d ranks", self.key, self.rank_size)


def distributed_models(servable: LoadedServable) -> list[DistributedLoadedModel]:
    """The distributed models of a loaded servable (each once)."""
    found = {
        id(model): model
        for runner in servable.methods.values()
        for model in runner.models.values()
        if isinstance(model, DistributedLoadedModel)
    }
    return list(found.values())
