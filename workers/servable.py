"""Load a servable directory written for MindSpore Serving and run jobs on it.

Layout: `{servable_dir}/{name}/servable_config.py` and numbered version folders holding the
model files (`{servable_dir}/{name}/{version}/{model_file}`). Version 0 means the newest.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import logging
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from msq.proto.columns import Outcomes, count_rows
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import Job, MethodSignature, Result
from msq.workers.batching import resolve
from msq.workers.compat import mindspore_serving_alias
from msq.workers.decryption import Decryption
from msq.workers.definition import (
    MethodDef,
    Model,
    ServableConfigError,
    ServableDef,
    ServableLoadError,
    collecting,
)
from msq.workers.distributed.declare import DistributedModel
from msq.workers.model import LoadedModel
from msq.workers.pipeline import MethodRunner
from msq.workers.signature import method_signature

if TYPE_CHECKING:
    from msq.workers.distributed.group import GroupSettings

CONFIG_FILE = "servable_config.py"

logger = logging.getLogger(__name__)


def is_version_folder(folder: Path) -> bool:
    """Whether `folder` is a version folder: 1, 2, ... (no sign, no leading zeros)."""
    name = folder.name
    return folder.is_dir() and name.isdigit() and name == str(int(name)) != "0"


def find_version(servable_dir: Path, name: str, version: int = 0) -> int:
    """The version folder to load: `version`, or the newest when it is 0."""
    folder = servable_dir / name
    if not folder.is_dir():
        raise ServableLoadError(f"servable directory {folder} does not exist")
    versions = sorted(int(entry.name) for entry in folder.iterdir() if is_version_folder(entry))
    if not versions:
        raise ServableLoadError(f"servable {name} has no version folders (1, 2, ...) in {folder}")
    if version == 0:
        return versions[-1]
    if version not in versions:
        available = ", ".join(map(str, versions))
        raise ServableLoadError(
            f"version {version} of servable {name} not found in {folder} (available: {available})"
        )
    return version


def import_config(servable_dir: Path, name: str) -> ServableDef:
    """Import `{servable_dir}/{name}/servable_config.py` and return what it declared.

    The servable folder is imported as package `msq_servable_{name}` (so relative imports
    work and no installed module is shadowed); `servable_dir` joins `sys.path`, as in
    MindSpore Serving.
    """
    folder = servable_dir / name
    if not (folder / CONFIG_FILE).is_file():
        raise ServableLoadError(f"{folder / CONFIG_FILE} does not exist")
    root = str(servable_dir.resolve())
    if root not in sys.path:
        sys.path.append(root)
    package = "msq_servable_" + re.sub(r"\W", "_", name)
    for module in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
        del sys.modules[module]
    spec = importlib.machinery.ModuleSpec(package, None, is_package=True)
    spec.submodule_search_locations = [str(folder.resolve())]
    sys.modules[package] = importlib.util.module_from_spec(spec)
    with collecting(name) as servable, mindspore_serving_alias():
        try:
            importlib.import_module(f"{package}.servable_config")
        except ServableConfigError as exc:
            raise ServableLoadError(f"{name}/{CONFIG_FILE}: {exc}") from exc
        except Exception as exc:
            raise ServableLoadError(
                f"import {name}/{CONFIG_FILE} failed: {type(exc).__name__}: {exc}"
            ) from exc
    if not servable.methods:
        raise ServableLoadError(f"{name}/{CONFIG_FILE} registers no method")
    return servable


@dataclass(slots=True)
class LoadedServable:
    """A servable version with its models loaded and warmed up, ready to run jobs."""

    name: str
    version: int
    methods: dict[str, MethodRunner]
    signatures: tuple[MethodSignature, ...]

    def execute(self, job: Job) -> Result:
        """Run a job: the outcome of every row, in order (each model pads to its own sizes)."""
        start, cpu_start = time.perf_counter(), time.process_time()
        runner = self.methods.get(job.method)
        if runner is None:
            failure = Failure(ErrorKind.NOT_FOUND, f"method is not available: {job.method}")
            outcomes = Outcomes.failed(count_rows(job.columns), failure)
        else:
            outcomes = runner.run(job.columns)
        compute_ms = (time.perf_counter() - start) * 1000.0
        cpu_ms = (time.process_time() - cpu_start) * 1000.0
        return Result(job.job_id, outcomes.columns, outcomes.failures, compute_ms, cpu_ms)


def load_servable(
    servable_dir: Path,
    name: str,
    version: int = 0,
    *,
    max_batch_size: int | None = None,
    decryption: Decryption | None = None,
    group: GroupSettings | None = None,
) -> LoadedServable:
    """Import the servable's config, load and warm up its models on the current device.

    `max_batch_size` overrides the config's batch sizes (`--max-batch-size`); `decryption`
    decrypts encrypted model files (`--dec-key-file`); `group` says how the ranks of a
    distributed servable run (default: local rank processes on the CPU).
    """
    number = find_version(servable_dir, name, version)
    definition = import_config(servable_dir, name)
    return load_version(
        definition, servable_dir / name / str(number), max_batch_size, decryption, group
    )


def _load_model(
    model: Model,
    version_dir: Path,
    dynamic_sizes: tuple[int, ...],
    decryption: Decryption | None,
    group: GroupSettings | None,
) -> LoadedModel:
    if not isinstance(model, DistributedModel):
        return LoadedModel(model, version_dir, dynamic_sizes, decryption)
    # Imported here: only distributed servables need the agent group.
    from msq.workers.distributed.group import GroupSettings  # noqa: PLC0415
    from msq.workers.distributed.model import DistributedLoadedModel  # noqa: PLC0415

    settings = group if group is not None else GroupSettings()
    return DistributedLoadedModel(model, version_dir, dynamic_sizes, decryption, settings)


def load_version(
    definition: ServableDef,
    version_dir: Path,
    max_batch_size: int | None = None,
    decryption: Decryption | None = None,
    group: GroupSettings | None = None,
) -> LoadedServable:
    """Load and warm up the models of an imported servable from one version folder."""
    settings = resolve(definition.batching, max_batch_size)
    if len(definition.models) > 1 and any(
        isinstance(model, DistributedModel) for model in definition.models
    ):
        raise ServableLoadError(
            f"{definition.name}/{CONFIG_FILE}: a servable with declare_servable(rank_size=...) "
            "declares no other model (one distributed model per servable)"
        )
    models: dict[int, LoadedModel] = {}
    for model in definition.models:
        loaded = _load_model(model, version_dir, settings.dynamic_sizes, decryption, group)
        loaded.warm_up()
        model.runner = loaded
        models[id(model)] = loaded
    methods = list(definition.methods.values())
    for method in methods:
        _check_model_stages(method, models)
    return LoadedServable(
        definition.name,
        int(version_dir.name),
        {method.name: MethodRunner(method, models) for method in methods},
        tuple(method_signature(method, models, settings) for method in methods),
    )


def _check_model_stages(method: MethodDef, models: dict[int, LoadedModel]) -> None:
    for number, stage in enumerate(method.stages, start=1):
        if not isinstance(stage.target, Model):
            continue
        graph = models[id(stage.target)].subgraphs[0]
        where = f"method '{method.name}' stage {number}: model {stage.target.model_key}"
        if len(stage.inputs) != len(graph.inputs):
            raise ServableLoadError(
                f"{where} takes {len(graph.inputs)} inputs, add_stage passes {len(stage.inputs)}"
            )
        if graph.outputs is not None and len(graph.outputs) != stage.outputs_count:
            raise ServableLoadError(
                f"{where} has {len(graph.outputs)} outputs, add_stage declares "
                f"outputs_count={stage.outputs_count}"
            )
