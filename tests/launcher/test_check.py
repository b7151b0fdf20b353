"""`msq check`: the findings and fixes for servables written for MindSpore Serving, exit codes,
the JSON and the table (in this process, as a worker loads servables; one console-script run)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from msq.launcher.cli import main
from tests.processes import EXAMPLES
from tests.workers.support import OldServables

OR_LEGACY = ", or start the worker with --legacy-imports"
UNTYPED = "cannot be typed (a Python stage stands between them and a model): V2 metadata shows "
UNTYPED_FIX = "declare the method's tensor dtypes and shapes in servable_config.py"


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    code = main(["check", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_resnet1x_c_transforms_are_reported_with_their_fix(
    old_servables: OldServables, capsys: pytest.CaptureFixture[str]
) -> None:
    config = old_servables.root / "resnet1x" / "servable_config.py"
    code, report = check(capsys, str(old_servables.root), "--servable", "resnet1x")
    assert code == 1
    assert (report["servables"], report["errors"], report["warnings"]) == (["resnet1x"], 2, 2)
    where = "resnet1x/servable_config.py"
    assert report["findings"] == [
        {
            "servable": "resnet1x",
            "severity": "error",
            "where": f"{where}:{line_of(config, 'transforms.c_transforms')}",
            "problem": "imports mindspore.dataset.transforms.c_transforms, removed in MindSpore "
            "2.0: the worker exits at start-up (No module named "
            "'mindspore.dataset.transforms.c_transforms')",
            "fix": "import mindspore.dataset.transforms instead (the same class names: Compose, "
            f"TypeCast, OneHot, ...){OR_LEGACY}",
        },
        {
            "servable": "resnet1x",
            "severity": "error",
            "where": f"{where}:{line_of(config, 'vision.c_transforms')}",
            "problem": "imports mindspore.dataset.vision.c_transforms, removed in MindSpore 2.0: "
            "the worker exits at start-up (No module named "
            "'mindspore.dataset.vision.c_transforms')",
            "fix": "import mindspore.dataset.vision instead (the same class names: Decode, "
            f"Resize, CenterCrop, Normalize, HWC2CHW, ...){OR_LEGACY}",
        },
        {
            "servable": "resnet1x",
            "severity": "warning",
            "where": where,
            "problem": f"method classify_top1: input image; output label {UNTYPED}no datatype "
            "or shape",
            "fix": UNTYPED_FIX,
        },
        {
            "servable": "resnet1x",
            "severity": "warning",
            "where": where,
            "problem": f"method channel_means: input image {UNTYPED}no datatype or shape",
            "fix": UNTYPED_FIX,
        },
    ]


def test_lenet1x_antialias_and_an_encrypted_model_without_key_are_reported(
    old_servables: OldServables, capsys: pytest.CaptureFixture[str]
) -> None:
    config = old_servables.root / "lenet1x" / "servable_config.py"
    model = old_servables.root / "secret" / "1" / "tensor_add.mindir"
    code, report = check(
        capsys, str(old_servables.root), "--servable", "lenet1x", "--servable", "secret"
    )
    assert code == 1
    errors = [f for f in report["findings"] if f["severity"] == "error"]
    assert errors == [
        {
            "servable": "lenet1x",
            "severity": "error",
            "where": f"lenet1x/servable_config.py:{line_of(config, '8), Image.ANTIALIAS')}",
            "problem": "uses PIL.Image.ANTIALIAS, removed in Pillow 10: every request that "
            "reaches it fails (AttributeError)",
            "fix": f"use PIL.Image.Resampling.LANCZOS (the same filter){OR_LEGACY}",
        },
        {
            "servable": "secret",
            "severity": "error",
            "where": "secret/1",
            "problem": f"cannot load model file {model}: it is encrypted; give its key with "
            "--dec-key-file (and --dec-mode unless AES-GCM): the worker exits at start-up when "
            "it serves version 1",
            "fix": "give the models' key with --dec-key-file and --dec-mode (msq check, "
            "msq-worker, msq serve)",
        },
    ]


def test_with_its_key_the_encrypted_servable_is_clean(
    old_servables: OldServables, capsys: pytest.CaptureFixture[str]
) -> None:
    key = str(old_servables.key_file)
    code, report = check(capsys, str(old_servables.root), "--servable", "secret",
                         "--dec-key-file", key)  # fmt: skip
    assert (code, report["findings"]) == (0, [])


def test_version_folders_missing_models_and_broken_configs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = EXAMPLES / "add" / "servable_config.py"
    for name in ("folders", "empty", "damaged", "typo"):
        (tmp_path / name).mkdir()
        shutil.copy(config, tmp_path / name)
    for folder in ("01", "0", "2", "data"):
        (tmp_path / "folders" / folder).mkdir()
    (tmp_path / "damaged" / "1").mkdir()
    (tmp_path / "damaged" / "1" / "tensor_add.mindir").write_bytes(b"not a model")
    (tmp_path / "typo" / "servable_config.py").write_text("from msq.workers import register\n(")
    code, report = check(capsys, str(tmp_path))
    assert code == 1
    findings = [(f["severity"], f["where"], f["problem"], f["fix"]) for f in report["findings"]]
    model = tmp_path / "damaged" / "1" / "tensor_add.mindir"
    assert findings == [
        ("error", "damaged/1",
         f"cannot load model file {model}: Load MindIR failed.: the worker exits at start-up "
         "when it serves version 1",
         "export the model again, or correct servable_config.py to match it"),
        ("error", "empty", "no version folder (1, 2, ...): the worker exits at start-up",
         "put the model files in a version folder named 1"),
        ("warning", "folders/0",
         "folder 0 is not a version folder (1, 2, ... without leading zeros): it is never served",
         "number versions from 1"),
        ("warning", "folders/01",
         "folder 01 is not a version folder (1, 2, ... without leading zeros): it is never "
         "served",
         "rename it to 1"),
        ("error", "folders/2/tensor_add.mindir",
         "model file tensor_add.mindir declared by servable_config.py is missing: the worker "
         "exits at start-up when it serves version 2",
         "put tensor_add.mindir in folders/2, or correct model_file in declare_model"),
        ("error", "typo/servable_config.py",
         "import typo/servable_config.py failed: SyntaxError: '(' was never closed "
         "(servable_config.py, line 2): the worker exits at start-up",
         "fix servable_config.py"),
        ("error", "typo", "no version folder (1, 2, ...): the worker exits at start-up",
         "put the model files in a version folder named 1"),
    ]  # fmt: skip


def test_an_absent_servable_is_a_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = check(capsys, str(tmp_path), "--servable", "absent")
    assert code == 1
    assert report["findings"] == [
        {
            "servable": "absent",
            "severity": "error",
            "where": "absent",
            "problem": f"servable folder {tmp_path / 'absent'} does not exist",
            "fix": "check the name, or create absent/servable_config.py",
        }
    ]


def test_the_table_shows_each_finding_and_a_summary(
    old_servables: OldServables,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    assert main(["check", str(old_servables.root), "--servable", "lenet1x"]) == 1
    lines = capsys.readouterr().out.splitlines()
    [row] = [line for line in lines if "ANTIALIAS" in line]
    config = old_servables.root / "lenet1x" / "servable_config.py"
    where = f"lenet1x/servable_config.py:{line_of(config, '8), Image.ANTIALIAS')}"
    assert row.split()[:3] == ["lenet1x", "error", where]
    assert "use PIL.Image.Resampling.LANCZOS (the same filter)" in row
    assert lines[-1] == "1 error, 1 warning in 1 servable (lenet1x)"


def test_nothing_to_check_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"msq check: no servable (a folder with servable_config.py) in {tmp_path}\n"
    )


def test_the_clean_examples_pass() -> None:
    done = subprocess.run(
        ["msq", "check", str(EXAMPLES), "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    report = json.loads(done.stdout)
    servables = ["add", "digits", "tp_mlp", "tp_mlp_single"]
    assert (done.returncode, report["servables"], report["errors"]) == (0, servables, 0)
    assert {f["severity"] for f in report["findings"]} <= {"warning"}
