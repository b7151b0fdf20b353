"""msq-bench's harness process does not import MindSpore.

Importing MindSpore sets PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python in its process; the
processes the harness starts (msq's gRPC gateway among them) would inherit it and decode
protobuf several times slower, which once made the gateway paths look slower than they are.
"""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import os, sys
import msq.benchmarks.cli
print("mindspore" in sys.modules, os.environ.get("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"))
"""


def test_the_harness_leaves_protobuf_alone() -> None:
    answer = subprocess.run(
        [sys.executable, "-c", CHECK],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, check=True,
    )  # fmt: skip
    assert answer.stdout.split() == ["False", "None"]
