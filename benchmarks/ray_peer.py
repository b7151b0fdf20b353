"""The peer: Ray Serve with `@serve.batch` running a scenario's work, behind Ray's HTTP proxy,
answering MindSpore Serving's REST requests (same JSON codec as msq) so that the same client
drives both. Needs `pip install "ray[serve]"`.

    python -m msq.benchmarks.ray_peer --scenario mlp --port 8000

Prints "ray-peer ready" on stderr once serving; SIGTERM shuts Ray down.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading

import numpy as np
import ray
from ray import serve
from starlette.requests import Request
from starlette.responses import Response

from msq.benchmarks.compute import load_compute
from msq.benchmarks.ms_rest import error_body, instance_values, reply_body
from msq.benchmarks.peers import BATCH_WAIT_S, MAX_BATCH_SIZE, parse_args, ready_line
from msq.benchmarks.scenarios import InstanceValues
from msq.gateways.rest.ms_json import MSRestError, parse_request

READY_LINE = ready_line("ray")


@serve.deployment(num_replicas=1, max_ongoing_requests=1024)
class ScenarioModel:
    """One replica running the scenario's work on batches of instances."""

    def __init__(self, scenario: str, threads: int) -> None:
        self.compute = load_compute(scenario, threads)

    # Ray is an optional extra: where it is absent, its decorators are untyped to mypy.
    @serve.batch(  # type: ignore[untyped-decorator]
        max_batch_size=MAX_BATCH_SIZE, batch_wait_timeout_s=BATCH_WAIT_S
    )
    async def run(self, instances: list[InstanceValues]) -> list[dict[str, np.ndarray]]:
        return self.compute(instances)

    async def __call__(self, request: Request) -> Response:
        try:
            instances = parse_request(await request.body())
        except MSRestError as exc:
            return Response(error_body(str(exc)), media_type="application/json")
        values = instance_values(instances)
        outputs = await asyncio.gather(*(self.run(value) for value in values))
        return Response(reply_body(outputs), media_type="application/json")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(__doc__.splitlines()[0], argv)
    ray.init(include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    app = ScenarioModel.bind(args.scenario, args.threads)  # type: ignore[attr-defined]
    serve.run(app, route_prefix="/")
    print(READY_LINE, file=sys.stderr, flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    stopped.wait()
    serve.shutdown()  # type: ignore[no-untyped-call]
    ray.shutdown()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main()
