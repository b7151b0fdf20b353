"""The `register` API: recorded pipelines and clear errors (pure logic, no MindSpore)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator

import numpy as np
import pytest

from msq.proto.batching import SETTINGS
from msq.workers import register
from msq.workers.batching import BatchingConfig
from msq.workers.definition import Placeholder, ServableConfigError, ServableDef, collecting


@pytest.fixture
def servable() -> Iterator[ServableDef]:
    with collecting("test") as definition:
        yield definition


def double(x):
    return x * 2


def pair(x1, x2):
    return x1, x2


def test_pipeline_is_recorded_with_placeholders(servable: ServableDef) -> None:
    model = register.declare_model("m.mindir", "MindIR")

    @register.register_method(output_names=["y", "z"])
    def predict(x1, x2):
        a, b = register.add_stage(pair, x1, x2, outputs_count=2)
        y = register.add_stage(model, a, b)
        z = register.add_stage(double, y, batch_size=4, tag="post")
        return y, z

    method = servable.methods["predict"]
    assert method.input_names == ("x1", "x2")
    assert method.output_names == ("y", "z")
    assert [stage.target for stage in method.stages] == [pair, model, double]
    assert method.stages[0].inputs == (Placeholder(0, 0), Placeholder(0, 1))
    assert method.stages[1].inputs == (Placeholder(1, 0), Placeholder(1, 1))
    assert method.stages[2].batch_size == 4
    assert method.stages[2].tag == "post"
    assert method.returns == (Placeholder(2, 0), Placeholder(3, 0))
    assert servable.models == [model]


def test_declare_model_records_its_geometry_settings(servable: ServableDef) -> None:
    model = register.declare_model(["a.mindir", "b.mindir"], "mindir", without_batch_dim_inputs=2)
    legacy = register.declare_servable("c.mindir", "MINDIR", with_batch_dim=False)
    assert model.files == ("a.mindir", "b.mindir")
    assert model.model_key == "a.mindir;b.mindir"
    assert model.without_batch_dim_inputs == (2,)
    assert model.with_batch_dim
    assert not legacy.with_batch_dim
    assert servable.models == [model, legacy]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("m.mindir", "OM"), "model format 'OM' of m.mindir is not supported"),
        (("m.mindir", "MindIR_Lite"), "msq runs MindIR models"),
        (([], "MindIR"), "model_file must be a non-empty str or list of str"),
        ((["a", "a"], "MindIR"), "must not repeat a name"),
        (("m.mindir", "MindIR", "yes"), "with_batch_dim must be a bool"),
        (("m.mindir", "MindIR", True, "fast"), "Parameter 'options' should be None"),
        (("m.mindir", "MindIR", True, None, [-1]), "without_batch_dim_inputs must be an int >= 0"),
    ],
)
def test_declare_model_errors(servable: ServableDef, arguments: tuple, message: str) -> None:
    with pytest.raises(ServableConfigError, match=re.escape(message)):
        register.declare_model(*arguments)


def test_a_model_file_is_declared_once(servable: ServableDef) -> None:
    register.declare_model("m.mindir", "MindIR")
    with pytest.raises(ServableConfigError, match=r"model file m\.mindir is already declared"):
        register.declare_model(["x.mindir", "m.mindir"], "MindIR")


def test_model_context_options_are_validated(servable: ServableDef) -> None:
    context = register.Context(thread_num=2)
    context.append_device_info(register.GPUDeviceInfo(precision_mode="fp16"))
    model = register.declare_model("m.mindir", "MindIR", context=context)
    assert model.context is context
    with pytest.raises(RuntimeError, match="unsupported option speed"):
        register.Context(speed=1)
    with pytest.raises(RuntimeError, match="precision_mode' can only be one of origin, fp16"):
        register.CPUDeviceInfo(precision_mode="int8")
    with pytest.raises(RuntimeError, match="gpu has already been appended"):
        context.append_device_info(register.GPUDeviceInfo())
    acl = register.AclOptions(input_format="NCHW")
    legacy = register.declare_servable("n.mindir", "MindIR", options=acl)
    assert legacy.context is acl.context


def test_method_errors_name_the_method(servable: ServableDef) -> None:
    model = register.declare_model("m.mindir", "MindIR")

    def star_args(*xs):
        return register.add_stage(model, *xs)

    def keywords(x, **kw):
        return register.add_stage(model, x)

    def keyword_only(x, *, y):
        return register.add_stage(model, x, y)

    def too_few(x1, x2):
        return register.add_stage(model, x1, x2)

    def not_a_placeholder(x):
        return register.add_stage(model, x, np.ones(2))

    def returns_a_value(x):
        register.add_stage(model, x)
        return 1.0

    def bad_outputs_count(x):
        return register.add_stage(model, x, outputs_count=0)

    def bad_batch_size(x):
        return register.add_stage(double, x, batch_size=-1)

    def wrong_arity(x1, x2):
        return register.add_stage(double, x1, x2)

    def not_a_stage(x):
        return register.add_stage("double", x)

    def unpack_error(x):
        a, _ = register.add_stage(double, x)
        return a

    cases = [
        (star_args, ["y"], "method 'star_args': input 'xs' must be a plain parameter"),
        (keywords, ["y"], "method 'keywords': input 'kw' must be a plain parameter"),
        (keyword_only, ["y"], "method 'keyword_only': input 'y' must be a plain parameter"),
        (too_few, ["y", "z"], "method 'too_few': returns 1 values but output_names has 2"),
        (not_a_placeholder, ["y"], "method 'not_a_placeholder': add_stage argument 2 is not"),
        (returns_a_value, ["y"], "method 'returns_a_value': each value returned must be a"),
        (bad_outputs_count, ["y"], "method 'bad_outputs_count': outputs_count must be an int"),
        (bad_batch_size, ["y"], "method 'bad_batch_size': batch_size must be None or an int"),
        (wrong_arity, ["y"], "method 'wrong_arity': function double(x) cannot be called with 2"),
        (not_a_stage, ["y"], "method 'not_a_stage': the stage of add_stage must be a function"),
        (unpack_error, ["y"], "method 'unpack_error': registration failed: TypeError"),
    ]
    for function, outputs, message in cases:
        with pytest.raises(ServableConfigError, match=re.escape(message)):
            register.register_method(output_names=outputs)(function)
    assert servable.methods == {}


def test_stage_model_must_be_declared_by_this_servable(servable: ServableDef) -> None:
    with collecting("other"):
        foreign = register.declare_model("m.mindir", "MindIR")

    def uses_foreign(x):
        return register.add_stage(foreign, x)

    with pytest.raises(ServableConfigError, match=r"Model\(m\.mindir\) was not declared"):
        register.register_method(output_names="y")(uses_foreign)


def test_placeholders_of_another_method_are_refused(servable: ServableDef) -> None:
    leaked = []

    @register.register_method(output_names="y")
    def first(x):
        leaked.append(x)
        return register.add_stage(double, x)

    def second(x):
        return register.add_stage(double, leaked[0])

    with pytest.raises(ServableConfigError, match="add_stage argument 1 is not a placeholder"):
        register.register_method(output_names="y")(second)


def test_duplicate_method_and_stage_outside_a_method(servable: ServableDef) -> None:
    @register.register_method(output_names="y")
    def same(x):
        return x

    with pytest.raises(ServableConfigError, match="method 'same' is already registered"):
        register.register_method(output_names="y")(same)
    with pytest.raises(ServableConfigError, match="must be called inside a function decorated"):
        register.add_stage(double, Placeholder(0, 0))


def test_legacy_calls_take_output_counts_from_the_source(servable: ServableDef) -> None:
    register.declare_servable("m.mindir", "MindIR")

    def batch_pairs(instances):
        return [pair(*instance) for instance in instances]

    @register.register_method(output_names=["y"])
    def legacy(x1, x2):
        x1, x2 = register.call_preprocess(pair, x1, x2)
        y = register.call_servable(x1, x2)
        y = register.call_postprocess(double, y)
        return y  # noqa: RET504 - the legacy style under test

    @register.register_method(output_names=["a", "b"])
    def legacy_pipeline(x1, x2):
        a, b = register.call_preprocess_pipeline(batch_pairs, x1, x2)
        return a, b

    stages = servable.methods["legacy"].stages
    assert [stage.outputs_count for stage in stages] == [2, 1, 1]
    assert [stage.tag for stage in stages] == ["Preprocess", "Servable", "Postprocess"]
    assert stages[1].target is servable.models[0]
    pipeline = servable.methods["legacy_pipeline"].stages[0]
    assert (pipeline.batch_size, pipeline.outputs_count) == (0, 2)


def test_legacy_call_order_is_checked(servable: ServableDef) -> None:
    register.declare_servable("m.mindir", "MindIR")

    def twice(x):
        y = register.call_servable(x)
        return register.call_servable(y)

    def late_preprocess(x):
        y = register.call_servable(x)
        return register.call_preprocess(double, y)

    with pytest.raises(ServableConfigError, match="the servable step can be added only once"):
        register.register_method(output_names="y")(twice)
    with pytest.raises(ServableConfigError, match="call_preprocess must come before the servable"):
        register.register_method(output_names="y")(late_preprocess)


def test_call_servable_needs_exactly_one_model(servable: ServableDef) -> None:
    def uses_servable(x):
        return register.call_servable(x)

    with pytest.raises(ServableConfigError, match="needs exactly one declared model, there are 0"):
        register.register_method(output_names="y")(uses_servable)


def test_model_call_outside_a_worker_is_a_clear_error(servable: ServableDef) -> None:
    model = register.declare_model("m.mindir", "MindIR")
    with pytest.raises(
        RuntimeError, match=r"Model\(m\.mindir\)\.call\(\) failed: the model is only"
    ):
        model.call(np.ones(2))
    with pytest.raises(RuntimeError, match="no inputs"):
        model.call()
    with pytest.raises(RuntimeError, match="subgraph must be an int >= 0"):
        model.call(np.ones(2), subgraph=-1)


def test_batching_settings_are_stored(servable: ServableDef) -> None:
    register.batching(
        max_queue_delay_ms=0, preferred_batch_size=8, max_queue_size=100, batch_sizes=[1, 8, 32]
    )
    assert servable.batching == BatchingConfig(
        {"max_queue_delay_ms": 0.0, "preferred_size": 8, "max_queue_size": 100}, (1, 8, 32)
    )
    assert type(servable.batching.settings["max_queue_delay_ms"]) is float
    with pytest.raises(ServableConfigError, match="only once per servable"):
        register.batching(max_batch_size=4)


def test_batching_has_a_keyword_for_every_policy_setting() -> None:
    keywords = set(inspect.signature(register.batching).parameters)
    policy_keywords = {setting.keyword for setting in SETTINGS.values()}
    assert keywords == policy_keywords | {"batch_sizes", "max_batch_size"}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_queue_delay_ms": -1}, "max_queue_delay_ms must be a number >= 0, not -1"),
        ({"max_queue_delay_ms": float("nan")}, "max_queue_delay_ms must be a number >= 0"),
        ({"preferred_batch_size": 0}, "preferred_batch_size must be an int >= 1, not 0"),
        ({"max_queue_size": 2.5}, "max_queue_size must be an int >= 1, not 2.5"),
        ({"max_batch_size": True}, "max_batch_size must be an int >= 1, not True"),
        ({"batch_sizes": [4, 2]}, "batch_sizes must be ascending distinct ints >= 1, not [4, 2]"),
        ({"batch_sizes": []}, "batch_sizes must be ascending distinct ints >= 1"),
        ({"batch_sizes": [2], "max_batch_size": 2}, "give batch_sizes or max_batch_size"),
        ({"preferred_batch_size": 65}, "preferred_batch_size 65 exceeds the largest batch size 64"),
        ({"batch_sizes": [1, 4], "preferred_batch_size": 8}, "exceeds the largest batch size 4"),
    ],
)
def test_batching_errors(servable: ServableDef, settings: dict, message: str) -> None:
    with pytest.raises(ServableConfigError, match=re.escape(message)):
        register.batching(**settings)
    assert servable.batching is None
