"""Error kinds shared by every process, and their MindSpore Serving error codes."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ErrorKind(enum.StrEnum):
    """Why a request or an instance failed; each kind maps to one status on every protocol."""

    INVALID_INPUT = "invalid_input"
    NOT_FOUND = "not_found"
    WORKER_UNAVAILABLE = "worker_unavailable"
    QUEUE_FULL = "queue_full"
    TIMEOUT = "timeout"
    MODEL_ERROR = "model_error"
    INTERNAL = "internal"


class MSErrorCode(enum.IntEnum):
    """MindSpore Serving's `ErrorMsg.error_code` values."""

    SUCCESS = 0
    FAILED = 1
    INVALID_INPUTS = 2
    SYSTEM_ERROR = 3
    WORKER_UNAVAILABLE = 4
    SERVABLE_UNAVAILABLE = 5


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed request or instance: what kind of failure, and a message for the caller."""

    kind: ErrorKind
    message: str
