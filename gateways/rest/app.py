"""The REST gateway's Falcon ASGI application factory.

One app per gunicorn worker process (built after the fork), serving MindSpore Serving's REST
routes, the Open Inference Protocol (V2) REST routes, `GET /metrics` and `GET /openapi.json`.
Run it with `msq-rest-gateway`, or with plain gunicorn as shown in
`msq.gateways.rest.gunicorn_conf`.
"""

from __future__ import annotations

from typing import Any

import falcon.asgi

from msq.gateways.rest import metrics, ms, openapi, v2, v2_repository
from msq.gateways.rest.http import App, ErrorHandlers
from msq.gateways.rest.metrics import RequestMetrics
from msq.gateways.rest.request_context import RequestIds
from msq.gateways.rest.state import Gateway, RestSettings


def create_app(settings: RestSettings | None = None) -> App:
    """The REST gateway app; settings default to `RestSettings.from_env()`."""
    settings = RestSettings.from_env() if settings is None else settings
    gateway = Gateway(settings)
    requests = RequestMetrics()
    middleware: list[Any] = [RequestIds(), gateway, requests]
    app: App = falcon.asgi.App(middleware=middleware)
    errors = ErrorHandlers(settings.ms_status_codes)
    errors.install(app)
    ms.add_routes(app, gateway, errors)
    v2.add_routes(app, gateway)
    v2_repository.add_routes(app, gateway)
    metrics.add_routes(app, gateway, requests)
    openapi.add_routes(app)
    return app
