"""Open Inference Protocol (KServe V2) REST routes, as tritonclient.http speaks them.

Models are named as on the gRPC gateway (`msq.gateways.v2.models`): `{servable}.{method}`, or
the bare `{servable}` when it has one method; `/versions/{v}` may follow the model everywhere.
Every non-200 answer is `{"error": "..."}`: 400 bad input, 404 unknown model, 503 with
`Retry-After` when overloaded or no worker serves the model, 504 when the deadline passes.
A request's deadline is its `timeout` parameter (microseconds) or the `X-MSQ-Timeout-Ms`
header.
"""

from __future__ import annotations

import falcon
import falcon.asgi

import msq
from msq.gateways.rest.http import App, HttpError, answer_bytes, answer_json, read_body, timeout_s
from msq.gateways.rest.state import Gateway
from msq.gateways.rest.v2_codec import HEADER_LENGTH, encode_infer_response, parse_infer_request
from msq.gateways.v2.models import V2Error, parse_version
from msq.gateways.v2.tensors import check_outputs, to_instances, to_outputs

#: The protocol extensions this server implements (names as Triton reports them).
EXTENSIONS = ("binary_tensor_data", "model_configuration", "statistics")
_MODEL = "/v2/models/{model}"
_VERSIONED = "/v2/models/{model}/versions/{version}"


class ServerResource:
    """Server metadata, liveness, readiness and the statistics of every model."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        answer_json(
            resp, 200, {"name": "msq", "version": msq.__version__, "extensions": EXTENSIONS}
        )

    async def on_get_live(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        answer_json(resp, 200, {"live": True})

    async def on_get_ready(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        status = await self._gateway.catalog.status()
        if status is None:
            raise HttpError(503, "not ready: the broker does not answer")
        if not any(info.workers > 0 for info in status.servables):
            raise HttpError(503, "not ready: no worker serves any model yet")
        answer_json(resp, 200, {"ready": True})

    async def on_get_stats(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        answer_json(resp, 200, {"model_stats": await self._gateway.catalog.statistics()})


class ModelResource:
    """One model: metadata, readiness, configuration, statistics and inference."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, model: str, version: str = ""
    ) -> None:
        resolved = await self._gateway.catalog.resolve(model, version)
        answer_json(resp, 200, resolved.metadata())

    async def on_get_ready(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, model: str, version: str = ""
    ) -> None:
        resolved = await self._gateway.catalog.resolve(model, version)
        if resolved.workers == 0:
            raise HttpError(503, f"model {model!r} is not ready: no worker serves it")
        answer_json(resp, 200, {"name": model, "ready": True})

    async def on_get_config(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, model: str, version: str = ""
    ) -> None:
        resolved = await self._gateway.catalog.resolve(model, version)
        answer_json(resp, 200, resolved.config())

    async def on_get_stats(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, model: str, version: str = ""
    ) -> None:
        stats = await self._gateway.catalog.statistics(model, version)
        answer_json(resp, 200, {"model_stats": stats})

    async def on_post_infer(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, model: str, version: str = ""
    ) -> None:
        body = await read_body(req, self._gateway.settings.max_body_bytes)
        resolved = await self._gateway.catalog.resolve(model, version)
        request = parse_infer_request(body, req.get_header(HEADER_LENGTH))
        check_outputs(resolved, request.outputs)
        instances = to_instances(resolved, request.inputs)
        reply = await self._gateway.link.infer(
            resolved.servable,
            resolved.method.name,
            instances,
            version=parse_version(version),
            timeout_s=request.timeout_s or timeout_s(req),
        )
        if reply.error is not None:
            raise V2Error.of(reply.error)
        outputs = to_outputs(resolved, reply.outcomes, list(request.outputs))
        answered, header_length = encode_infer_response(
            model, reply.version or resolved.version, request, outputs
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
