"""Encrypted models: the key file rules, and MindSpore's decryption with the right key, a wrong
one and none (in this process; `test_migration_processes` serves one)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from msq.proto.columns import stack
from msq.workers.decryption import Decryption, KeyFileError, read_key_file
from msq.workers.model import ModelDecryptionError
from msq.workers.servable import load_servable
from tests.workers.support import OldServables, decode, encode, f32


def _key_file(tmp_path: Path, content: bytes, mode: int = 0o600) -> Path:
    path = tmp_path / "model.key"
    path.write_bytes(content)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("size", [16, 24, 32])
def test_a_private_key_file_gives_its_bytes(tmp_path: Path, size: int) -> None:
    key = os.urandom(size)
    decryption = read_key_file(_key_file(tmp_path, key), "AES-CBC")
    assert decryption == Decryption(key, "AES-CBC")
    assert key.hex() not in repr(decryption)
    assert repr(key) not in repr(decryption)
    assert repr(decryption) == "Decryption(mode='AES-CBC')"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o644])
def test_a_key_file_others_can_access_is_refused(tmp_path: Path, mode: int) -> None:
    path = _key_file(tmp_path, b"k" * 16, mode)
    with pytest.raises(KeyFileError) as caught:
        read_key_file(path)
    assert str(caught.value) == (
        f"key file {path} is accessible by group or others (mode {mode:04o}): run chmod 600 {path}"
    )


def test_a_key_file_must_hold_a_key(tmp_path: Path) -> None:
    path = _key_file(tmp_path, b"secret-pass\n")
    with pytest.raises(KeyFileError) as caught:
        read_key_file(path)
    assert str(caught.value) == (f"key file {path} holds 12 bytes; a key is 16, 24 or 32 raw bytes")
    assert "secret-pass" not in str(caught.value)


def test_a_missing_key_file_or_unknown_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match=r"^cannot read key file .*: No such file or directory$"):
        read_key_file(tmp_path / "absent.key")
    with pytest.raises(
        KeyFileError, match=r"^unknown decryption mode 'AES-ECB': use one of AES-GCM, AES-CBC, "
    ):
        read_key_file(_key_file(tmp_path, b"k" * 16), "AES-ECB")


def test_an_encrypted_model_serves_with_its_key(old_servables: OldServables) -> None:
    servable = load_servable(old_servables.root, "secret", decryption=Decryption(old_servables.key))
    [spec] = servable.signatures
    assert [(t.name, t.dtype, t.shape) for t in spec.inputs] == [
        ("x1", "float32", (2, 2)),
        ("x2", "float32", (2, 2)),
    ]
    instance = {"x1": f32(2, 2, value=1.5), "x2": f32(2, 2, value=2.0)}
    [outcome] = [
        decode(o) for o in servable.methods["add_common"].run(stack([encode(instance)])).rows()
    ]
    assert isinstance(outcome, dict)
    np.testing.assert_array_equal(outcome["y"], f32(2, 2, value=3.5))


def test_an_encrypted_model_with_a_wrong_key_or_mode_fails_clearly(
    old_servables: OldServables,
) -> None:
    path = old_servables.root / "secret" / "1" / "tensor_add.mindir"
    for decryption in (Decryption(os.urandom(16)), Decryption(old_servables.key, "AES-CBC")):
        with pytest.raises(ModelDecryptionError) as caught:
            load_servable(old_servables.root, "secret", decryption=decryption)
        assert str(caught.value) == (
            f"cannot decrypt model file {path} with the given key in {decryption.mode} mode: the "
            "key or mode differs from the export's, or the file is not encrypted or damaged"
        )


def test_a_worker_without_the_key_exits_with_a_clear_message(old_servables: OldServables) -> None:
    path = old_servables.root / "secret" / "1" / "tensor_add.mindir"
    worker = subprocess.run(
        [sys.executable, "-m", "msq.workers.cli", "--servable-dir", str(old_servables.root),
         "--servable", "secret", "--threads", "1"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert worker.returncode == 1
    assert "Traceback" not in worker.stderr
    assert worker.stderr.splitlines()[-1] == (
        f"msq-worker: cannot load model file {path}: it is encrypted; give its key with "
        "--dec-key-file (and --dec-mode unless AES-GCM)"
    )


def test_a_worker_refuses_a_readable_key_file_before_loading(
    old_servables: OldServables, tmp_path: Path
) -> None:
    shared = _key_file(tmp_path, old_servables.key, 0o644)
    worker = subprocess.run(
        [sys.executable, "-m", "msq.workers.cli", "--servable-dir", str(old_servables.root),
         "--servable", "secret", "--dec-key-file", str(shared)],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert worker.returncode == 1
    assert worker.stderr.decode() == (
        f"msq-worker: key file {shared} is accessible by group or others (mode 0644): run "
        f"chmod 600 {shared}\n"
    )
    assert old_servables.key not in worker.stderr
