"""Request ids: the one rule for the id every request gets where it enters msq.

A request keeps the id its client gave — REST: the `X-Request-Id` header, then the V2 body's
`id`; gRPC: the `x-request-id` metadata, then (V2) the request's `id` — when that id is
1 to `MAX_LENGTH` printable ASCII characters without spaces; otherwise (none, or one that does
not fit) it gets a new one (32 hex digits). The id travels in the broker `Request` and every
`Job`, names the request in every log line about it, and is echoed to the client (REST:
`X-Request-Id` response header; gRPC: `x-request-id` initial metadata).
"""

from __future__ import annotations

import re
import uuid

#: The HTTP header carrying a request id both ways.
HEADER = "X-Request-Id"
#: The gRPC metadata key carrying a request id both ways.
METADATA_KEY = "x-request-id"
#: Longest request id kept from a client.
MAX_LENGTH = 128
_VALID = re.compile(rf"[\x21-\x7e]{{1,{MAX_LENGTH}}}")


def valid(given: object) -> bool:
    """Whether a client's id is kept: 1 to `MAX_LENGTH` printable ASCII characters, no spaces."""
    return isinstance(given, str) and _VALID.fullmatch(given) is not None


def new_request_id() -> str:
    """A fresh request id: 32 hex digits (a random UUID)."""
    return uuid.uuid4().hex


def request_id(*given: object) -> str:
    """The first valid id among `given` (in the protocol's order of precedence), else a new one."""
    for candidate in given:
        if valid(candidate):
            return str(candidate)
    return new_request_id()
