"""The request id of a gRPC call (`msq.gateways.core.request_ids`).

The id is the call's `x-request-id` metadata when valid, else (V2) the request's `id`, else a
new one. It is bound to every log line the call's task logs (`msq.process.bind_log_fields`;
grpc.aio runs each call in its own task) and answered in the call's `x-request-id` trailing
metadata, errors included.
"""

from __future__ import annotations

import grpc

from msq.gateways.core.request_ids import METADATA_KEY, request_id
from msq.process import bind_log_fields


def metadata_value(context: grpc.aio.ServicerContext, key: str) -> str | None:
    """The value of the call's metadata `key` (None: absent)."""
    for name, value in context.invocation_metadata() or ():
        if name == key:
            return str(value)
    return None


def call_request_id(context: grpc.aio.ServicerContext, *fallbacks: object) -> str:
    """The call's request id (see the module docstring), bound to its log lines and echoed."""
    rid = request_id(metadata_value(context, METADATA_KEY), *fallbacks)
    bind_log_fields(request_id=rid)
    context.set_trailing_metadata(((METADATA_KEY, rid),))
    return rid
