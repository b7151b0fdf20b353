"""Keys of encrypted MindIR models (`--dec-key-file`, `--dec-mode`).

The key file holds the raw key bytes (16, 24 or 32 of them, as `mindspore.export(...,
enc_key=...)` took them) and must be readable by its owner only. The key travels no further
than MindSpore's own MindIR decryption: never on a command line, in a log line or a repr.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, field
from pathlib import Path

#: The decryption modes of MindSpore 2.10's `mindspore.load(..., dec_mode=...)`.
DEC_MODES = ("AES-GCM", "AES-CBC", "SM4-CBC")
DEFAULT_DEC_MODE = "AES-GCM"
KEY_SIZES = (16, 24, 32)


class KeyFileError(ValueError):
    """A key file that cannot be used: missing, readable by others, or not a key."""


@dataclass(frozen=True, slots=True)
class Decryption:
    """The key and mode to decrypt a servable's model files with (the key is not in the repr)."""

    key: bytes = field(repr=False)
    mode: str = DEFAULT_DEC_MODE


def read_key_file(path: Path, mode: str = DEFAULT_DEC_MODE) -> Decryption:
    """The key in `path`; KeyFileError if the file is not a private file holding a key."""
    if mode not in DEC_MODES:
        raise KeyFileError(f"unknown decryption mode {mode!r}: use one of {', '.join(DEC_MODES)}")
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"key file {path} is not a regular file")
        if info.st_mode & 0o077:
            raise KeyFileError(
                f"key file {path} is accessible by group or others (mode "
                f"{stat.S_IMODE(info.st_mode):04o}): run chmod 600 {path}"
            )
        key = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
    if len(key) not in KEY_SIZES:
        raise KeyFileError(
            f"key file {path} holds {len(key)} bytes; a key is 16, 24 or 32 raw bytes"
        )
    return Decryption(key, mode)
