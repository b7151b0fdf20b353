"""MindSpore Serving's REST routes: `POST /model/{servable}[/version/{n}]:{method}`.

The body and answer follow `msq.gateways.rest.ms_json`; the instances travel to the broker
stacked into columns (`msq.gateways.core.instances`). As in MindSpore Serving, errors are
answered with HTTP 200 and `{"error_msg": ...}` unless the gateway runs with real status codes
(`--http-status-codes`); then a failed request gets the status of its error kind (400 bad
input, 404 unknown servable or method, 503 + Retry-After overloaded or no worker, 504 deadline)
while a request with some good and some bad instances still answers 200. The optional header
`X-MSQ-Timeout-Ms` sets the request's deadline (else the gateway's default); `X-Request-Id`
its request id (`msq.gateways.rest.request_context`).
"""

from __future__ import annotations

from typing import Any

import falcon.asgi

from msq import tracing
from msq.gateways.core.errors import GatewayError, error_status
from msq.gateways.core.instances import infer_instances
from msq.gateways.rest.http import App, ErrorHandlers, HttpError, answer_bytes, deadline, read_body
from msq.gateways.rest.ms_json import MSRestError, dump_json, parse_request, reply_document
from msq.gateways.rest.state import Gateway
from msq.proto.errors import ErrorKind

ROUTE = "/model/{servable}:{method}"
VERSIONED_ROUTE = "/model/{servable}/version/{version}:{method}"
_MAX_VERSION = 2**32 - 1


def parse_version(version: str) -> int:
    """A URL version number, with MindSpore Serving's messages for bad ones."""
    if not version.isdecimal():
        raise HttpError(
            400,
            "please check url, the keyword:[version] value invalid, "
            f"request version number {version}",
        )
    number = int(version)
    if number >= _MAX_VERSION:
        raise HttpError(
            400, f"please check url, version number range failed, request version number {version}"
        )
    return number


class PredictResource:
    """Runs a servable method on the instances of a MindSpore Serving REST request."""

    def __init__(self, gateway: Gateway, errors: ErrorHandlers) -> None:
        self._gateway = gateway
        self._errors = errors

    async def on_post(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        servable: str,
        method: str,
        version: str = "0",
    ) -> None:
        number = parse_version(version)
        settings = self._gateway.settings
        until = deadline(req, settings.default_timeout_s)
        body = await read_body(req, settings.max_body_bytes)
        try:
            instances = parse_request(body)
        except MSRestError as exc:
            raise GatewayError(ErrorKind.INVALID_INPUT, str(exc)) from None
        outcomes = await infer_instances(
            self._gateway.link,
            servable,
            method,
            instances,
            version=number,
            deadline=until,
            rid=req.context.request_id,
        )
        with tracing.span("msq.gateway.reply"):
            document, failure = reply_document(outcomes)
            status = 200 if failure is None else error_status(failure.kind).http_status
            answer_bytes(resp, self._errors.status_for(req, status), dump_json(document))


class UrlErrorSink:
    """Answers `/model...` paths that match no route with MindSpore Serving's URL messages."""

    async def __call__(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response | None, **params: Any
    ) -> None:
        if req.method != "POST":
            raise HttpError(405, "http message only support POST right now")
        path = req.path
        if path.rstrip("/") == "/model":
            message = "please check url, the keyword:[model] must contain."
        elif ":" not in path:
            message = "please check url, the keyword:[service method] must contain."
        else:
            message = "please check url: expected /model/{servable}[/version/{n}]:{method}"
        raise HttpError(404, message)


def add_routes(app: App, gateway: Gateway, errors: ErrorHandlers) -> None:
    """Mount MindSpore Serving's routes on `app`."""
    resource = PredictResource(gateway, errors)
    app.add_route(ROUTE, resource)
    app.add_route(VERSIONED_ROUTE, resource)
    app.add_sink(UrlErrorSink(), prefix=r"^/model(/|$)")
