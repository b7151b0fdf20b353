"""MindSpore Serving's servable definition API, used by `servable_config.py`.

Works unchanged with configs written for MindSpore Serving: while a worker loads a config,
`from mindspore_serving.server import register` gives this module (see
`msq.workers.compat`); `from msq.workers import register` works anywhere.

- `declare_model(model_file, model_format, ...)` declares a MindIR model (or a list of
  subgraphs) of the servable's version folder and returns a `Model`.
- `@register_method(output_names=[...])` defines a method: its name is the function's, its
  inputs the function's parameters. The function runs once, at import, with placeholders,
  and records a static pipeline of `add_stage` calls.
- `add_stage(stage, *args, outputs_count=1, batch_size=None, tag=None)` adds a model or a
  Python function to the pipeline.
- Legacy API: `declare_servable`, `call_preprocess`, `call_servable`, `call_postprocess` and
  the `_pipeline` variants.
- msq extensions: `batching(...)` sets how the broker forms jobs for the servable's methods;
  `register_method(..., input_types=..., output_types=...)` declares a method's tensor types.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from msq.proto.batching import BatchingError
from msq.workers.batching import read_config
from msq.workers.config_values import indices, legacy_output_counts, names, tensor_types
from msq.workers.definition import (
    MethodDef,
    Model,
    Placeholder,
    ServableConfigError,
    StageDef,
    current_servable,
)
from msq.workers.model_context import (
    AclOptions,
    AscendDeviceInfo,
    Context,
    CPUDeviceInfo,
    GPUDeviceInfo,
    GpuOptions,
)

__all__ = [
    "AclOptions",
    "AscendDeviceInfo",
    "CPUDeviceInfo",
    "Context",
    "GPUDeviceInfo",
    "GpuOptions",
    "Model",
    "add_stage",
    "batching",
    "call_postprocess",
    "call_postprocess_pipeline",
    "call_preprocess",
    "call_preprocess_pipeline",
    "call_servable",
    "declare_model",
    "declare_servable",
    "register_method",
]

logger = logging.getLogger(__name__)

FunctionT = TypeVar("FunctionT", bound=Callable[..., Any])

SUPPORTED_MODEL_FORMATS = ("mindir",)
_LEGACY_PHASES = {"preprocess": 1, "servable": 2, "postprocess": 3}


# ---------------------------------------------------------------------------------- models


def declare_model(  # noqa: PLR0917 - MindSpore Serving's signature
    model_file: str | Sequence[str],
    model_format: str,
    with_batch_dim: bool = True,
    options: AclOptions | GpuOptions | None = None,
    without_batch_dim_inputs: int | Sequence[int] | None = None,
    context: Context | None = None,
    config_file: str | None = None,
) -> Model:
    """Declare a model of the servable (once per file); `model_file` may list subgraphs.

    `with_batch_dim`: dim 0 of the model's inputs and outputs is the batch (else each
    instance is one run). `without_batch_dim_inputs`: indices of inputs without a batch dim,
    shared by the instances of a batch.
    """
    files = names("model_file", model_file)
    if not isinstance(model_format, str) or model_format.lower() not in SUPPORTED_MODEL_FORMATS:
        raise ServableConfigError(
            f"model format {model_format!r} of {';'.join(files)} is not supported: msq runs "
            "MindIR models (model_format='MindIR', case ignored)"
        )
    if not isinstance(with_batch_dim, bool):
        raise ServableConfigError(f"with_batch_dim must be a bool, not {with_batch_dim!r}")
    shared = indices(without_batch_dim_inputs)
    if options is not None and not isinstance(options, (AclOptions, GpuOptions)):
        raise ServableConfigError(
            f"Parameter 'options' should be None, GpuOptions or AclOptions, not {type(options)}"
        )
    if context is not None and not isinstance(context, Context):
        raise ServableConfigError(f"Parameter 'context' should be Context, not {type(context)}")
    if config_file is not None and not isinstance(config_file, str):
        raise ServableConfigError(f"config_file must be a str, not {config_file!r}")
    if context is not None or options is not None or config_file is not None:
        logger.warning("%s: model context options and config_file are ignored", ";".join(files))
    servable = current_servable()
    declared = {name for model in servable.models for name in model.files}
    for name in files:
        if name in declared:
            raise ServableConfigError(f"model file {name} is already declared")
    model = Model(
        files,
        model_format.lower(),
        with_batch_dim=with_batch_dim,
        without_batch_dim_inputs=shared,
        context=context if context is not None else getattr(options, "context", None),
        config_file=config_file,
    )
    servable.models.append(model)
    return model


def declare_servable(
    servable_file: str | Sequence[str],
    model_format: str,
    with_batch_dim: bool = True,
    options: AclOptions | GpuOptions | None = None,
    without_batch_dim_inputs: int | Sequence[int] | None = None,
) -> Model:
    """Deprecated name of `declare_model`."""
    return declare_model(
        servable_file, model_format, with_batch_dim, options, without_batch_dim_inputs
    )


# ---------------------------------------------------------------------------------- methods


class _Recorder:
    """Records the pipeline of the method whose function is running."""

    def __init__(self, method: MethodDef, legacy_counts: dict[str, int]) -> None:
        self.method = method
        self.legacy_counts = legacy_counts
        self.legacy_phase = 0
        self.made: dict[int, Placeholder] = {}

    def placeholders(self, stage: int, count: int) -> list[Placeholder]:
        made = [Placeholder(stage, index) for index in range(count)]
        self.made.update((id(placeholder), placeholder) for placeholder in made)
        return made

    def owns(self, value: object) -> bool:
        return self.made.get(id(value)) is value

    def fail(self, message: str) -> ServableConfigError:
        return ServableConfigError(f"method '{self.method.name}': {message}")


_recording: _Recorder | None = None


def _recorder(api: str) -> _Recorder:
    if _recording is None:
        raise ServableConfigError(
            f"{api} must be called inside a function decorated by register_method"
        )
    return _recording


def register_method(
    output_names: str | Sequence[str],
    *,
    input_types: Mapping[str, object] | None = None,
    output_types: Mapping[str, object] | None = None,
) -> Callable[[FunctionT], FunctionT]:
    """Register the decorated function as a method whose outputs are `output_names`.

    The function runs once, now, with placeholders for its inputs; it must call `add_stage`
    (or the legacy `call_*` functions) and return one placeholder per output name.

    msq extension: `input_types` / `output_types` declare inputs' and outputs' per-instance
    types, `{name: (dtype, shape)}` (e.g. `{"pixels": ("float32", [8, 8])}`; -1 in a shape is
    any size, `[]` a scalar, None any shape). Requests are validated against declared input
    types; V2 metadata reports them. A model stage types the inputs it takes straight from the
    method and the outputs it gives straight back; declare the others.
    """
    outputs = names("output_names", output_names)

    def register(func: FunctionT) -> FunctionT:
        global _recording  # noqa: PLW0603 - add_stage reaches the recording method through it
        name = func.__name__
        servable = current_servable()
        if name in servable.methods:
            raise ServableConfigError(f"method '{name}' is already registered")
        parameters = inspect.signature(func).parameters.values()
        for parameter in parameters:
            if parameter.kind not in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
                raise ServableConfigError(
                    f"method '{name}': input '{parameter.name}' must be a plain parameter "
                    "(no *args, **kwargs or keyword-only inputs)"
                )
        inputs = tuple(p.name for p in parameters)
        where = f"method '{name}'"
        method = MethodDef(
            name,
            inputs,
            outputs,
            input_types=tensor_types(where, "input_types", input_types, inputs),
            output_types=tensor_types(where, "output_types", output_types, outputs),
        )
        recorder = _Recorder(method, legacy_output_counts(func))
        _recording = recorder
        try:
            returned = func(*recorder.placeholders(0, len(method.input_names)))
        except ServableConfigError:
            raise
        except Exception as exc:
            raise recorder.fail(f"registration failed: {type(exc).__name__}: {exc}") from exc
        finally:
            _recording = None
        returns = tuple(returned) if isinstance(returned, (tuple, list)) else (returned,)
        if not all(recorder.owns(value) for value in returns):
            raise recorder.fail(
                "each value returned must be a placeholder: a method input or an output of "
                "add_stage"
            )
        if len(returns) != len(outputs):
            raise recorder.fail(
                f"returns {len(returns)} values but output_names has {len(outputs)}: "
                f"{list(outputs)}"
            )
        method.returns = returns
        servable.methods[name] = method
        return func

    return register


def add_stage(
    stage: Model | Callable[..., Any],
    *args: Any,
    outputs_count: int = 1,
    batch_size: int | None = None,
    tag: str | None = None,
) -> Any:
    """Add a stage to the method being registered: a `Model` or a Python function.

    `args` are placeholders (method inputs or outputs of earlier stages). A function with
    `batch_size=None` is called once per instance with its values; with `batch_size` 0 or N
    it is called with a list of instances (a tuple of values each; all of a job's, or at most
    N) and returns a list/tuple of (or yields) per-instance outputs. Returns one placeholder,
    or a tuple of `outputs_count` placeholders.
    """
    recorder = _recorder("add_stage")
    for position, value in enumerate(args, start=1):
        if not recorder.owns(value):
            raise recorder.fail(
                f"add_stage argument {position} is not a placeholder: each argument must be "
                "a method input or an output of an earlier add_stage"
            )
    if not isinstance(outputs_count, int) or isinstance(outputs_count, bool) or outputs_count < 1:
        raise recorder.fail(f"outputs_count must be an int >= 1, not {outputs_count!r}")
    if tag is not None and not isinstance(tag, str):
        raise recorder.fail(f"tag must be a str, not {tag!r}")
    if isinstance(stage, Model):
        if not any(model is stage for model in current_servable().models):
            raise recorder.fail(f"{stage!r} was not declared by this servable's declare_model")
        batch_size = None
    elif callable(stage) and not isinstance(stage, type):
        _check_function(recorder, stage, len(args), batch_size)
    else:
        raise recorder.fail(
            f"the stage of add_stage must be a function or a Model returned by declare_model, "
            f"not {type(stage).__name__}"
        )
    definition = StageDef(stage, tuple(args), outputs_count, batch_size, tag or "")
    recorder.method.stages.append(definition)
    outputs = recorder.placeholders(len(recorder.method.stages), outputs_count)
    return outputs[0] if outputs_count == 1 else tuple(outputs)


def _check_function(
    recorder: _Recorder, function: Callable[..., Any], inputs: int, batch_size: int | None
) -> None:
    if batch_size is not None and (
        not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 0
    ):
        raise recorder.fail(f"batch_size must be None or an int >= 0, not {batch_size!r}")
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return
    arguments = inputs if batch_size is None else 1
    try:
        signature.bind(*range(arguments))
    except TypeError:
        name = getattr(function, "__name__", repr(function))
        expected = f"{inputs} inputs" if batch_size is None else "one list of instances"
        raise recorder.fail(
            f"function {name}{signature} cannot be called with {expected}"
        ) from None


# ---------------------------------------------------------------------------------- legacy


def _legacy_stage(
    api: str, stage: Model | Callable[..., Any], args: tuple[Any, ...], batch_size: int | None
) -> Any:
    recorder = _recorder(api)
    phase_name = api.removeprefix("call_").removesuffix("_pipeline")
    phase = _LEGACY_PHASES[phase_name]
    if recorder.legacy_phase == phase:
        raise recorder.fail(f"{api}: the {phase_name} step can be added only once")
    if recorder.legacy_phase > phase:
        later = next(n for n, number in _LEGACY_PHASES.items() if number == recorder.legacy_phase)
        raise recorder.fail(f"{api} must come before the {later} step")
    recorder.legacy_phase = phase
    outputs_count = recorder.legacy_counts.get(api, 1)
    tag = phase_name.capitalize()
    return add_stage(stage, *args, outputs_count=outputs_count, batch_size=batch_size, tag=tag)


def call_preprocess(preprocess_fun: Callable[..., Any], *args: Any) -> Any:
    """Deprecated: `add_stage(preprocess_fun, *args)` (one call per instance)."""
    return _legacy_stage("call_preprocess", preprocess_fun, args, None)


def call_preprocess_pipeline(preprocess_fun: Callable[..., Any], *args: Any) -> Any:
    """Deprecated: `add_stage(preprocess_fun, *args, batch_size=0)` (lists of instances)."""
    return _legacy_stage("call_preprocess_pipeline", preprocess_fun, args, 0)


def call_servable(*args: Any) -> Any:
    """Deprecated: `add_stage(model, *args)` with the servable's only declared model."""
    models = current_servable().models
    if len(models) != 1:
        raise _recorder("call_servable").fail(
            f"call_servable needs exactly one declared model, there are {len(models)}; "
            "use add_stage(model, ...) instead"
        )
    return _legacy_stage("call_servable", models[0], args, None)


def call_postprocess(postprocess_fun: Callable[..., Any], *args: Any) -> Any:
    """Deprecated: `add_stage(postprocess_fun, *args)` (one call per instance)."""
    return _legacy_stage("call_postprocess", postprocess_fun, args, None)


def call_postprocess_pipeline(postprocess_fun: Callable[..., Any], *args: Any) -> Any:
    """Deprecated: `add_stage(postprocess_fun, *args, batch_size=0)` (lists of instances)."""
    return _legacy_stage("call_postprocess_pipeline", postprocess_fun, args, 0)


# ---------------------------------------------------------------------------------- batching


def batching(
    *,
    max_queue_delay_ms: float | None = None,
    preferred_batch_size: int | None = None,
    max_queue_size: int | None = None,
    batch_sizes: Sequence[int] | None = None,
    max_batch_size: int | None = None,
) -> None:
    """msq extension: how the broker batches the instances of this servable's methods.

    Call it at most once in `servable_config.py`; every argument is optional.

    - `max_queue_delay_ms` (default 2.0): the longest an instance waits in the queue for a
      job to fill up to `preferred_batch_size`; 0 sends what is queued at once.
    - `preferred_batch_size` (default: the largest job size): a job this big is sent at once.
    - `max_queue_size` (default 10000): instances queued per method before new requests
      are refused.
    - `batch_sizes`: the job sizes, ascending (e.g. `[1, 8, 32]`); a job is padded to the
      smallest that holds it. Models with a dynamic batch dimension run these sizes.
    - `max_batch_size` (default 64): instead of `batch_sizes`, powers of two up to this.

    A model with a fixed batch size N always runs N instances at a time; the worker splits
    larger jobs and pads the last part with zeros (never returned). The worker's
    `--max-batch-size` overrides `batch_sizes` and `max_batch_size`.
    """
    servable = current_servable()
    if servable.batching is not None:
        raise ServableConfigError("register.batching may be called only once per servable")
    try:
        servable.batching = read_config({
            "max_queue_delay_ms": max_queue_delay_ms,
            "preferred_batch_size": preferred_batch_size,
            "max_queue_size": max_queue_size,
            "batch_sizes": batch_sizes,
            "max_batch_size": max_batch_size,
        })  # fmt: skip
    except BatchingError as exc:
        raise ServableConfigError(str(exc)) from None
