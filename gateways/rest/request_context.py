"""Falcon middleware giving every REST request its request id (`msq.gateways.core.request_ids`)
and, when the gateway traces, its `msq.gateway.receive` span (`msq.tracing`).

The id is the client's `X-Request-Id` when valid, else a new one; the V2 infer route may then
adopt the body's `id` (`adopt_body_id`). It is in `req.context.request_id`, bound to every log
line logged while the request is handled (`msq.process.bind_log_fields`), and answered in the
`X-Request-Id` response header, errors included. The span is a child of the client's
`traceparent` header when it sent one.
"""

from __future__ import annotations

import falcon.asgi

from msq import tracing
from msq.gateways.core.request_ids import HEADER, request_id, valid
from msq.process import bind_log_fields, unbind_log_fields


class RequestIds:
    """The middleware; see the module docstring."""

    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        given = req.get_header(HEADER)
        context = req.context
        context.request_id = request_id(given)
        context.request_id_from_header = valid(given)
        context.log_token = bind_log_fields(request_id=context.request_id)
        context.span = tracing.start_server_span(
            "msq.gateway.receive", req.get_header(tracing.TRACEPARENT), context.request_id
        )

    async def process_response(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        resource: object,
        req_succeeded: bool,
    ) -> None:
        context = req.context
        if "request_id" in context:
            resp.set_header(HEADER, context.request_id)
            tracing.end_server_span(context.span)
            unbind_log_fields(context.log_token)


def adopt_body_id(req: falcon.asgi.Request, given: object) -> str:
    """The request's id once its body is read: the body's `given` id (V2 `id`) when valid and
    no valid `X-Request-Id` came, else the one it has."""
    context = req.context
    if not context.request_id_from_header and valid(given):
        context.request_id = str(given)
        bind_log_fields(request_id=context.request_id)
    rid: str = context.request_id
    return rid
