"""The REST gateway's Falcon ASGI application factory.

One app per gunicorn worker process (built after the fork), serving MindSpore Serving's REST
routes, the Open Inference Protocol (V2) REST routes, `GET /metrics` and `GET /openapi.json`.
Run it with `msq-rest-gateway`, or with plain gunicorn as shown in
`msq.gateways.gunicorn_conf`.
"""

from __future__ import annotations

from typing import Any

import falcon.asgi

from msq.gateways import rest_metrics, rest_ms, rest_openapi, rest_v2
from msq.gateways.rest_http import App, ErrorHandlers
from msq.gateways.rest_metrics import RequestMetrics
from msq.gateways.rest_state import Gateway, RestSettings


def create_app(settings: RestSettings | None = None) -> App:
    """The REST gateway app; settings default to `RestSettings.from_env()`."""
    settings = RestSettings.from_env() if settings is None else settings
    gateway = Gateway(settings)
    metrics = RequestMetrics()
    middleware: list[Any] = [gateway, metrics]
    app: App = falcon.asgi.App(middleware=middleware)
    errors = ErrorHandlers(settings.ms_status_codes)
    errors.install(app)
    rest_ms.add_routes(app, gateway, errors)
    rest_v2.add_routes(app, gateway)
    rest_metrics.add_routes(app, gateway, metrics)
    rest_openapi.add_routes(app)
    return app
