"""The REST protocol floor: a bare Falcon ASGI app answering MindSpore Serving's
`POST /model/{servable}:{method}` by running a scenario's work in-process, with msq's own JSON
codec (so the floor parses and formats exactly as msq's REST gateway does).

Run it under gunicorn like msq's REST gateway, the scenario named in the environment:

    MSQ_BENCH_SCENARIO=tiny gunicorn --worker-class asgi --workers 2 \\
        --bind 127.0.0.1:5501 'msq.benchmarks.bare_rest:create_app()'
"""

from __future__ import annotations

import os

import falcon
import falcon.asgi

from msq.benchmarks.compute import Compute, load_compute
from msq.benchmarks.ms_rest import error_body, instance_values, reply_body
from msq.benchmarks.scenarios import DEFAULT_THREADS
from msq.gateways.rest.ms_json import MSRestError, parse_request

SCENARIO_ENV = "MSQ_BENCH_SCENARIO"
THREADS_ENV = "MSQ_BENCH_THREADS"


class PredictResource:
    """`POST /model/{servable}:{method}`: every request runs the scenario's work."""

    def __init__(self, compute: Compute) -> None:
        self.compute = compute

    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, servable: str, method: str
    ) -> None:
        resp.content_type = falcon.MEDIA_JSON
        try:
            instances = parse_request(await req.stream.read())
        except MSRestError as exc:
            resp.data = error_body(str(exc))
            return
        try:
            outputs = self.compute(instance_values(instances))
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            resp.data = error_body(f"{type(exc).__name__}: {exc}")
            return
        resp.data = reply_body(outputs)


def create_app() -> falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]:
    """The app for the scenario named by $MSQ_BENCH_SCENARIO (model loaded per process)."""
    compute = load_compute(
        os.environ[SCENARIO_ENV], int(os.environ.get(THREADS_ENV, DEFAULT_THREADS))
    )
    app: falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response] = falcon.asgi.App()
    app.add_route("/model/{servable}:{method}", PredictResource(compute))
    return app
