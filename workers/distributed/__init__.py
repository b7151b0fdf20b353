"""Distributed servables: one model sharded over `rank_size` ranks, served by one worker.

`declare` (the servable API, `declare_servable`), `model` (the sharded model behind the same
interface as `msq.workers.model.LoadedModel`), `group` (the worker's side: the agents, the
MindSpore cluster's scheduler, supervision and restarts), `rank` (one rank's process),
`processes` (the commands and environments of those processes), `agent_cli` (`msq-agent`).
See docs/distributed.md.
"""

from msq.workers.distributed.declare import DistributedModel, declare_servable, rank_file

__all__ = ["DistributedModel", "declare_servable", "rank_file"]
