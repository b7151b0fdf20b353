"""Loading servable directories: versions, config import (with the mindspore_serving alias),
models and the method signatures a worker announces."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from msq.proto.messages import BatchPolicy, MethodSignature, TensorSpec
from msq.workers import register
from msq.workers.definition import ServableLoadError
from msq.workers.servable import LoadedServable, find_version, import_config, load_servable

ADD_CONFIG = """
from msq.workers import register
add = register.declare_model("add_dyn.mindir", "MindIR")
register.batching(max_batch_size=1)

@register.register_method(output_names=["y"])
def add_common(x1, x2):
    return register.add_stage(add, x1, x2)
"""


def make_servable(
    root: Path, name: str, config: str, models: dict[str, Path] | None = None, version: int = 1
) -> Path:
    """Write `root/name/servable_config.py` and link `models` into version folder `version`."""
    folder = root / name
    (folder / str(version)).mkdir(parents=True, exist_ok=True)
    (folder / "servable_config.py").write_text(config)
    for file_name, source in (models or {}).items():
        (folder / str(version) / file_name).symlink_to(source)
    return root


def test_version_zero_is_the_newest_folder(tmp_path: Path) -> None:
    for entry in ["1", "2", "10", "0", "02", "x"]:
        (tmp_path / "s" / entry).mkdir(parents=True)
    assert find_version(tmp_path, "s") == 10
    assert find_version(tmp_path, "s", 2) == 2
    message = f"version 3 of servable s not found in {tmp_path / 's'} (available: 1, 2, 10)"
    with pytest.raises(ServableLoadError, match=re.escape(message)):
        find_version(tmp_path, "s", 3)


def test_missing_directory_and_versions(tmp_path: Path) -> None:
    with pytest.raises(ServableLoadError, match=r"servable directory .*/nothing does not exist"):
        find_version(tmp_path, "nothing")
    (tmp_path / "empty" / "latest").mkdir(parents=True)
    with pytest.raises(ServableLoadError, match=r"servable empty has no version folders \(1, 2"):
        find_version(tmp_path, "empty")
    with pytest.raises(ServableLoadError, match=r"empty/servable_config\.py does not exist"):
        import_config(tmp_path, "empty")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            "import not_a_module_xyz\n",
            "import broken/servable_config.py failed: ModuleNotFoundError: No module named "
            "'not_a_module_xyz'",
        ),
        ("raise ValueError('boom')\n", "import broken/servable_config.py failed: ValueError: boom"),
        (
            "from msq.workers import register\n"
            "@register.register_method(output_names=['y', 'z'])\n"
            "def f(x):\n    return x\n",
            "broken/servable_config.py: method 'f': returns 1 values but output_names has 2",
        ),
        ("x = 1\n", "broken/servable_config.py registers no method"),
        (
            "from mindspore_serving.client import Client\n",
            "No module named 'mindspore_serving.client'",
        ),
    ],
)
def test_config_errors(tmp_path: Path, config: str, message: str) -> None:
    make_servable(tmp_path, "broken", config)
    with pytest.raises(ServableLoadError, match=re.escape(message)):
        import_config(tmp_path, "broken")


def test_mindspore_serving_imports_give_msq_register_while_loading(tmp_path: Path) -> None:
    config = (
        "import mindspore_serving\n"
        "import mindspore_serving.server.register as aliased\n"
        "from mindspore_serving.server import register\n"
        "from msq.workers import register as ours\n"
        "assert aliased is register is ours is mindspore_serving.server.register\n"
        "@register.register_method(output_names=['y'])\n"
        "def echo(x):\n    return x\n"
    )
    make_servable(tmp_path, "shim", config)
    earlier = types.ModuleType("mindspore_serving")
    sys.modules["mindspore_serving"] = earlier
    try:
        servable = import_config(tmp_path, "shim")
        assert sys.modules["mindspore_serving"] is earlier
    finally:
        del sys.modules["mindspore_serving"]
    assert list(servable.methods) == ["echo"]
    assert "mindspore_serving.server" not in sys.modules
    assert "mindspore_serving.server.register" not in sys.modules


def test_servable_named_like_a_module_with_relative_imports(tmp_path: Path) -> None:
    config = (
        "from msq.workers import register\n"
        "from .helpers import OUTPUT\n"
        "@register.register_method(output_names=[OUTPUT])\n"
        "def echo(x):\n    return x\n"
    )
    make_servable(tmp_path, "json", config)
    (tmp_path / "json" / "helpers.py").write_text("OUTPUT = 'copy'\n")
    servable = import_config(tmp_path, "json")
    assert servable.methods["echo"].output_names == ("copy",)
    import json

    assert json.dumps([1]) == "[1]"


def test_pipes_signatures(pipes: LoadedServable) -> None:
    signatures = {signature.name: signature for signature in pipes.signatures}
    dynamic = BatchPolicy((1, 2, 4, 8), 8, 1.5, 10000)
    assert pipes.name == "pipes"
    assert pipes.version == 1
    assert signatures["add_common"] == MethodSignature(
        "add_common",
        (TensorSpec("x1", "float32", (2, 2)), TensorSpec("x2", "float32", (2, 2))),
        (TensorSpec("y", "float32", (2, 2)),),
        dynamic,
    )
    assert signatures["affine"].batching == BatchPolicy((4,), 4, 1.5, 10000)
    assert signatures["affine"].inputs == (TensorSpec("x", "float32", (3,)),)
    # the shared input (no batch dim) is sent whole with each instance
    assert signatures["scaled"].inputs[1] == TensorSpec("s", "float32", (3,))
    # a model without batch dim: each instance is one run, jobs of up to the maximum
    assert signatures["static"].batching == dynamic
    assert signatures["static"].inputs[0] == TensorSpec("x1", "float32", (2, 2))
    assert signatures["two_outputs"].outputs == (
        TensorSpec("total", "float32", (2,)),
        TensorSpec("diff", "float32", (2,)),
        TensorSpec("norm"),
    )
    # inputs that only Python code sees have no known dtype or shape
    assert signatures["python_values"].inputs == (
        TensorSpec("text"),
        TensorSpec("blob"),
        TensorSpec("number"),
    )
    assert signatures["python_values"].batching == dynamic
    assert signatures["checked"].inputs == (TensorSpec("x1"), TensorSpec("x2", "float32", (2, 2)))
    assert signatures["echo"].outputs[0] == TensorSpec("same", "float32", (2, 2))


def test_legacy_servable_loads_unchanged_with_worker_batch_override(servable_dir: Path) -> None:
    legacy = load_servable(servable_dir, "legacy", max_batch_size=2)
    signatures = {signature.name: signature for signature in legacy.signatures}
    assert set(signatures) == {"add_common", "add_cast", "add_halved"}
    assert signatures["add_common"].inputs[0] == TensorSpec("x1", "float32", (2, 2))
    assert signatures["add_cast"].inputs[0] == TensorSpec("x1")
    assert signatures["add_cast"].batching == BatchPolicy((1, 2), 2, 2.0, 10000)


def test_model_errors_at_load(tmp_path: Path, servable_dir: Path) -> None:
    models = servable_dir / "pipes" / "1"
    add = {"add_dyn.mindir": models / "add_dyn.mindir"}
    cases = [
        (ADD_CONFIG, {}, "model file {root}/m/1/add_dyn.mindir does not exist"),
        (
            ADD_CONFIG,
            {"add_dyn.mindir": Path(__file__)},
            "cannot load model file {root}/m/1/add_dyn.mindir: ",
        ),
        (
            ADD_CONFIG.replace("add_stage(add, x1, x2)", "add_stage(add, x1)"),
            add,
            "method 'add_common' stage 1: model add_dyn.mindir takes 2 inputs, add_stage passes 1",
        ),
        (
            ADD_CONFIG.replace('"MindIR")', '"MindIR", without_batch_dim_inputs=[5])'),
            add,
            "add_dyn.mindir: without_batch_dim_inputs [5] names inputs the model lacks (it has 2)",
        ),
        (
            ADD_CONFIG.replace("add_dyn", "sum_diff"),
            {"sum_diff.mindir": models / "sum_diff.mindir"},
            "model sum_diff.mindir has 2 outputs, add_stage declares outputs_count=1",
        ),
    ]
    for number, (config, files, message) in enumerate(cases):
        root = make_servable(tmp_path / str(number), "m", config, files)
        with pytest.raises(ServableLoadError, match=re.escape(message.format(root=root))):
            load_servable(root, "m")


def test_model_call_from_user_code_after_loading(pipes: LoadedServable) -> None:
    """Declared models stay bound to the loaded ones: `Model.call` works from user code."""
    assert pipes.name == "pipes"
    config = sys.modules["msq_servable_pipes.servable_config"]
    assert isinstance(config.affine4, register.Model)
    assert config.affine4.call(np.array([1, 2, 3], np.float32)).tolist() == [3.0, 5.0, 7.0]
    x1, x2 = np.array([1, 2], np.float32), np.array([3, 5], np.float32)
    outputs = config.sum_diff.call([(x1, x2), (x2, x1)])
    assert [[value.tolist() for value in output] for output in outputs] == [
        [[4.0, 7.0], [-2.0, -3.0]],
        [[4.0, 7.0], [2.0, 3.0]],
    ]
    message = "model plus_one.mindir;times_ten.mindir has no subgraph 2"
    with pytest.raises(RuntimeError, match=re.escape(message)):
        config.sub.call(x1, subgraph=2)
