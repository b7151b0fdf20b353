"""The V2 model repository REST routes, as tritonclient.http calls them:
`POST /v2/repository/index` (body empty, or `{"ready": true}` for the ready versions only)
answers Triton's index, a list of `{name, version, state, reason}`;
`POST /v2/repository/models/{model}/load` and `.../unload` answer 200 with an empty body once
the servable's workers are ready, or drained and stopped. The work is
`msq.gateways.v2.repository`'s; failures answer `{"error": "..."}` with their kind's status.
"""

from __future__ import annotations

import json
from typing import Any

import falcon
import falcon.asgi

from msq.gateways.rest.http import App, HttpError, answer_bytes, answer_json, read_body
from msq.gateways.rest.state import Gateway

#: Largest body a repository request may have (it holds only options).
_MAX_BODY_BYTES = 64 * 1024


class RepositoryResource:
    """The repository index, and loading and unloading a servable."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    async def on_post_index(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        options = await _options(req)
        ready = options.get("ready", False)
        if not isinstance(ready, bool):
            raise HttpError(400, "'ready' must be true or false")
        answer_json(resp, 200, await self._gateway.v2.repository.index(ready_only=ready))

    async def on_post_load(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, model: str
    ) -> None:
        parameters = (await _options(req)).get("parameters") or {}
        if not isinstance(parameters, dict):
            raise HttpError(400, "'parameters' must be a JSON object")
        if any(key == "config" or key.startswith("file:") for key in parameters):
            raise HttpError(400, "loading with a config or files is not supported")
        await self._gateway.v2.repository.load(model)
        answer_bytes(resp, 200, b"")

    async def on_post_unload(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, model: str
    ) -> None:
        await _options(req)
        await self._gateway.v2.repository.unload(model)
        answer_bytes(resp, 200, b"")


async def _options(req: falcon.asgi.Request) -> dict[str, Any]:
    """The request's JSON object (empty body: no options); HttpError 400 otherwise."""
    body = await read_body(req, _MAX_BODY_BYTES)
    if not body.strip():
        return {}
    try:
        options = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HttpError(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(options, dict):
        raise HttpError(400, "body must be a JSON object")
    return options


def add_routes(app: App, gateway: Gateway) -> None:
    """Mount the repository routes on `app`."""
    repository = RepositoryResource(gateway)
    app.add_route("/v2/repository/index", repository, suffix="index")
    app.add_route("/v2/repository/models/{model}/load", repository, suffix="load")
    app.add_route("/v2/repository/models/{model}/unload", repository, suffix="unload")
