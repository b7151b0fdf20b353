"""Regenerate the gRPC stubs of msq's .proto files: ``python proto/generate_stubs.py``.

Writes ``*_pb2.py``, ``*_pb2.pyi`` and ``*_pb2_grpc.py`` next to the .proto files with
grpcio-tools, then makes two fixes to protoc's output: imports name ``msq.proto`` (protoc writes
top-level imports), and each file builds its descriptors in a private pool instead of
protobuf's default one, so msq's ``inference`` messages coexist in one process with
tritonclient's (or MindSpore Serving's) identically named ones. mypy uses the ``.pyi``
files but does not check them or the service stubs (protoc's output is not ``--strict`` clean).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from grpc_tools import protoc  # type: ignore[import-untyped]

PROTO_DIR = Path(__file__).resolve().parent
PROTOS = ("ms_service.proto", "grpc_predict_v2.proto")
PACKAGE = "msq.proto"
UNCHECKED = "# mypy: ignore-errors"


def fix_imports(text: str) -> str:
    """``import x_pb2 as y`` -> ``from msq.proto import x_pb2 as y``."""
    return re.sub(
        r"^import (\w+_pb2) as (\w+)$", rf"from {PACKAGE} import \1 as \2", text, flags=re.M
    )


def use_private_pool(text: str) -> str:
    """Build the file's descriptors in a pool of its own, not protobuf's default pool."""
    fixed = text.replace("_descriptor_pool.Default()", "_descriptor_pool.DescriptorPool()")
    if fixed == text:
        raise RuntimeError("protoc output changed: no default descriptor pool to replace")
    return fixed


def generate() -> None:
    """Run protoc on every .proto file and fix its output."""
    args = [
        "grpc_tools.protoc",
        f"--proto_path={PROTO_DIR}",
        f"--python_out={PROTO_DIR}",
        f"--pyi_out={PROTO_DIR}",
        f"--grpc_python_out={PROTO_DIR}",
        *(str(PROTO_DIR / name) for name in PROTOS),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for name in PROTOS:
        stem = name.removesuffix(".proto")
        messages = PROTO_DIR / f"{stem}_pb2.py"
        messages.write_text(use_private_pool(fix_imports(messages.read_text())))
        types = PROTO_DIR / f"{stem}_pb2.pyi"
        types.write_text(f"{UNCHECKED}\n{types.read_text()}")
        services = PROTO_DIR / f"{stem}_pb2_grpc.py"
        services.write_text(f"{UNCHECKED}\n{fix_imports(services.read_text())}")


if __name__ == "__main__":
    generate()
    sys.exit(0)
