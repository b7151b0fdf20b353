"""Open Inference Protocol (KServe V2) REST routes, as tritonclient.http speaks them.

Models, readiness, documents and inference are `msq.gateways.v2.service`'s (shared with the
gRPC gateway): `{servable}.{method}`, or the bare `{servable}` when it has one method;
`/versions/{v}` may follow the model everywhere. Every non-200 answer is `{"error": "..."}`:
400 bad input, 404 unknown model, 503 with `Retry-After` when overloaded or no worker serves the
model, 504 when the deadline passes. A request's deadline is the smaller of its `timeout`
parameter (microseconds) and the `X-MSQ-Timeout-Ms` header, else the gateway's default. Its
request id is the `X-Request-Id` header, else the body's `id`, else a new one; the response
echoes it in `X-Request-Id` and, as the protocol says, the body's `id` (when one came) in `id`.
"""

from __future__ import annotations

import falcon
import falcon.asgi

from msq import tracing
from msq.gateways.rest.http import App, answer_bytes, answer_json, deadline, read_body
from msq.gateways.rest.request_context import adopt_body_id
from msq.gateways.rest.state import Gateway
from msq.gateways.rest.v2_codec import HEADER_LENGTH, encode_infer_response, parse_infer_request
from msq.gateways.v2.documents import model_config, model_metadata, server_metadata
from msq.gateways.v2.service import InferCall

#: The protocol extensions this server implements (names as Triton reports them).
EXTENSIONS = ("binary_tensor_data", "model_configuration", "model_repository", "statistics")
_MODEL = "/v2/models/{model}"
_VERSIONED = "/v2/models/{model}/versions/{version}"


class ServerResource:
    """Server metadata, liveness, readiness and the statistics of every model."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        answer_json(resp, 200, server_metadata(EXTENSIONS))

    async def on_get_live(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        answer_json(resp, 200, {"live": True})

    async def on_get_ready(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        await self._gateway.v2.check_server_ready()
        answer_json(resp, 200, {"ready": True})

    async def on_get_stats(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        answer_json(resp, 200, {"model_stats": await self._gateway.v2.statistics()})


class ModelResource:
    """One model: metadata, readiness, configuration, statistics and inference."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, model: str, version: str = ""
    ) -> None:
        answer_json(resp, 200, model_metadata(await self._gateway.v2.model(model, version)))

    async def on_get_ready(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, model: str, version: str = ""
    ) -> None:
        await self._gateway.v2.check_model_ready(model, version)
        answer_json(resp, 200, {"name": model, "ready": True})

    async def on_get_config(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, model: str, version: str = ""
    ) -> None:
        answer_json(resp, 200, model_config(await self._gateway.v2.model(model, version)))

    async def on_get_stats(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, model: str, version: str = ""
    ) -> None:
        stats = await self._gateway.v2.statistics(model, version)
        answer_json(resp, 200, {"model_stats": stats})

    async def on_post_infer(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, model: str, version: str = ""
    ) -> None:
        settings = self._gateway.settings
        body = await read_body(req, settings.max_body_bytes)
        request = parse_infer_request(body, req.get_header(HEADER_LENGTH))
        until = deadline(req, settings.default_timeout_s, request.timeout)
        rid = adopt_body_id(req, request.request_id)
        call = InferCall(model, version, request.inputs, list(request.outputs), until, rid)
        answer = await self._gateway.v2.infer(call)
        with tracing.span("msq.gateway.reply"):
            answered, header_length = encode_infer_response(
                model, answer.version, request, answer.outputs
            )
        if header_length is None:
            answer_bytes(resp, 200, answered)
        else:
            answer_bytes(resp, 200, answered, "application/octet-stream")
            resp.set_header(HEADER_LENGTH, str(header_length))


def add_routes(app: App, gateway: Gateway) -> None:
    """Mount the V2 routes on `app`."""
    server = ServerResource(gateway)
    app.add_route("/v2", server)
    app.add_route("/v2/health/live", server, suffix="live")
    app.add_route("/v2/health/ready", server, suffix="ready")
    app.add_route("/v2/models/stats", server, suffix="stats")
    model = ModelResource(gateway)
    for prefix in (_MODEL, _VERSIONED):
        app.add_route(prefix, model)
        for suffix in ("ready", "config", "stats", "infer"):
            app.add_route(f"{prefix}/{suffix}", model, suffix=suffix)
