"""HTTP plumbing shared by the REST gateway's routes: bodies, deadlines, JSON answers, errors.

Errors have two shapes. MindSpore Serving's routes (`/model/...`) answer
`{"error_msg": "..."}`; every other route answers `{"error": "..."}` (the Open Inference
Protocol's shape, which tritonclient decodes), router 404 and 405 included.
"""

from __future__ import annotations

import json
import logging
import zlib
from typing import Any, TypeAlias

import falcon
import falcon.asgi

from msq.gateways.core.deadline import TIMEOUT_HEADER, request_deadline
from msq.gateways.core.errors import GatewayError
from msq.proto.deadline import Deadline

log = logging.getLogger(__name__)

#: Seconds a client is asked to wait before retrying an overloaded or unserved model.
RETRY_AFTER_S = 1
#: Path prefix of MindSpore Serving's routes.
MS_PREFIX = "/model"
#: The ASGI app type the route modules mount their resources on.
App: TypeAlias = "falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]"
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class HttpError(Exception):
    """An answer other than success: its HTTP status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def read_body(req: falcon.asgi.Request, limit: int) -> bytes:
    """The whole request body, decompressed per `Content-Encoding` (gzip, deflate).

    Raise `HttpError` 413 when it (or its decompressed form) exceeds `limit` bytes.
    """
    if req.content_length is not None and req.content_length > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in req.stream:
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = (req.get_header("Content-Encoding") or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding not in _WBITS:
        raise HttpError(415, f"Content-Encoding {encoding!r} is not supported (gzip, deflate)")
    inflater = zlib.decompressobj(_WBITS[encoding])
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise HttpError(400, f"body is not valid {encoding} data: {exc}") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise _too_large(limit)
    return data


def _too_large(limit: int) -> HttpError:
    return HttpError(413, f"http message is bigger than {limit} bytes")


def deadline(
    req: falcon.asgi.Request, default_s: float, timeout_parameter: object = None
) -> Deadline:
    """The request's deadline: the smaller of the `X-MSQ-Timeout-Ms` header and (V2) the
    `timeout` parameter, else `default_s`; `GatewayError` (400) for a bad timeout."""
    return request_deadline(
        default_s,
        timeout_parameter=timeout_parameter,
        timeout_header=req.get_header(TIMEOUT_HEADER),
    )


def answer_json(resp: falcon.asgi.Response, status: int, document: Any) -> None:
    """Answer a JSON document."""
    answer_bytes(resp, status, json.dumps(document, separators=(",", ":")).encode("utf-8"))


def answer_bytes(
    resp: falcon.asgi.Response, status: int, body: bytes, content_type: str = falcon.MEDIA_JSON
) -> None:
    """Answer a body already encoded; 503 answers carry `Retry-After`."""
    resp.status = status
    resp.content_type = content_type
    resp.data = body
    if status == 503:
        resp.set_header("Retry-After", str(RETRY_AFTER_S))


def is_ms_route(req: falcon.asgi.Request) -> bool:
    """Whether the request is on MindSpore Serving's routes (its error shape)."""
    return req.path == MS_PREFIX or req.path.startswith(MS_PREFIX + "/")


def answer_error(resp: falcon.asgi.Response, status: int, message: str, *, ms: bool) -> None:
    """Answer an error in the route family's shape."""
    answer_json(resp, status, {"error_msg" if ms else "error": message})


class ErrorHandlers:
    """Falcon error handlers answering every failure as JSON in the route family's shape.

    `ms_status_codes` False keeps MindSpore Serving's habit of HTTP 200 for errors on its
    routes (the body says what failed); 413 is always 413.
    """

    def __init__(self, ms_status_codes: bool) -> None:
        self.ms_status_codes = ms_status_codes

    def install(self, app: App) -> None:
        """Register the handlers (the most specific last)."""
        app.add_error_handler(Exception, self.on_unexpected)
        app.add_error_handler(falcon.HTTPError, self.on_falcon_error)
        app.add_error_handler(HttpError, self.on_http_error)
        app.add_error_handler(GatewayError, self.on_gateway_error)

    def status_for(self, req: falcon.asgi.Request, status: int) -> int:
        """The status to send: 200 for MindSpore routes unless real codes are asked for."""
        if is_ms_route(req) and not self.ms_status_codes and status != 413:
            return 200
        return status

    async def on_http_error(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: HttpError, params: Any
    ) -> None:
        ms = is_ms_route(req)
        answer_error(resp, self.status_for(req, ex.status), ex.message, ms=ms)

    async def on_gateway_error(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: GatewayError, params: Any
    ) -> None:
        status = self.status_for(req, ex.status.http_status)
        answer_error(resp, status, ex.message, ms=is_ms_route(req))

    async def on_falcon_error(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        ex: falcon.HTTPError,
        params: Any,
    ) -> None:
        ms = is_ms_route(req)
        if ms and ex.status_code == 405:
            message = "http message only support POST right now"
        elif ex.status_code in (404, 405):
            message = f"{ex.title}: {req.method} {req.path}"
        else:
            message = ex.description or ex.title
        answer_error(resp, self.status_for(req, ex.status_code), message, ms=ms)
        if ex.headers:
            resp.set_headers(ex.headers)

    async def on_unexpected(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: Exception, params: Any
    ) -> None:
        log.exception("unexpected error answering %s %s", req.method, req.path)
        message = f"internal error: {type(ex).__name__}: {ex}"
        answer_error(resp, self.status_for(req, 500), message, ms=is_ms_route(req))
