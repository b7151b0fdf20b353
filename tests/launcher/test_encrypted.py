"""An encrypted MindIR started through MindSpore Serving's API (`dec_key`, `dec_mode`): it
serves with the key, fails clearly without it, and the key is in no process's command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import psutil
import pytest

from msq.client import Client
from tests.launcher.test_msq_run import msq_run, write_config
from tests.processes import Proc, endpoint, free_port

KEY = b"msq-test-key-0123456789abcdefgh!"  # 32 bytes: AES-256
ONES = {"x1": np.ones((2, 2), np.float32), "x2": np.ones((2, 2), np.float32)}
SCRIPTS = Path(__file__).with_name("scripts")
START_SCRIPT = """\
import sys
from mindspore_serving import server

servable_dir, key_file, grpc_address = sys.argv[1:4]
with open(key_file, "rb") as file:
    key = file.read() if len(sys.argv) < 5 else None
config = server.ServableStartConfig(servable_dir, "enc_add", device_type="CPU", dec_key=key,
                                    dec_mode="AES-GCM")
server.start_servables(config)
server.start_grpc_server(grpc_address)
"""


@pytest.fixture(scope="module")
def servables(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("encrypted")
    key_file = folder / "key"
    key_file.write_bytes(KEY)
    export = SCRIPTS / "export_encrypted_add.py"
    subprocess.run([sys.executable, export, folder, key_file, "AES-GCM"], check=True)
    (folder / "serving_server.py").write_text(START_SCRIPT)
    return folder


def start(folder: Path, *extra: str) -> tuple[Proc, str]:
    grpc = f"127.0.0.1:{free_port()}"
    script, config = folder / "serving_server.py", write_config(folder, endpoint())
    proc = msq_run(config, script, str(folder), str(folder / "key"), grpc, *extra)
    return proc.start(), grpc


def test_an_encrypted_model_serves_with_its_key_which_no_command_line_shows(
    servables: Path,
) -> None:
    proc, grpc = start(servables)
    try:
        proc.wait_ready(300.0)
        result = Client(grpc, "enc_add", "add_common", timeout=30).infer(ONES)
        assert isinstance(result, list)
        np.testing.assert_array_equal(result[0]["y"], np.full((2, 2), 2.0, np.float32))
        processes = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        command_lines = [" ".join(p.cmdline()) for p in processes]
        assert not any(KEY.decode() in line or KEY.hex() in line for line in command_lines)
        (worker,) = [line for line in command_lines if "msq-worker" in line]
        key_file = Path(worker.split("--dec-key-file ")[1].split(" ")[0])
        assert key_file.stat().st_mode & 0o777 == 0o600
    finally:
        proc.stop()
    assert not key_file.exists()  # removed at stop
    assert KEY.decode() not in proc.log()


def test_without_the_key_start_servables_fails_clearly(servables: Path) -> None:
    proc, _ = start(servables, "no-key")
    try:
        assert proc.process.wait(120) == 1
    finally:
        proc.stop()
    assert "RuntimeError: Fail to start workers: worker enc_add cpu #1 exited with code 1" in (
        proc.log()
    )
