"""The second peer: LitServe running a scenario's work with its own batching (one inference
worker, `max_batch_size=64`, `batch_timeout=0.002`), answering MindSpore Serving's REST requests
with the same JSON codec as msq and the Ray peer, so that the same client drives all three.
Needs `pip install "msq[litserve]"` (LitServe 0.2.19).

    python -m msq.benchmarks.litserve_peer --scenario mlp --port 8000

LitServe batches requests, not instances: a batch of up to 64 requests runs the scenario's
work once on all their instances (with 1-instance requests, as in T6, the same as the Ray peer
batching instances). Prints "litserve-peer ready" on stderr once its `/health` answers 200.
"""

# No `from __future__ import annotations`: LitServe reads `decode_request`'s annotation at
# run time (`Request` asks it for the request's parsed JSON document).

import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import litserve as ls
import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from msq.benchmarks.compute import Compute, load_compute
from msq.benchmarks.ms_rest import error_body, instance_values, reply_body
from msq.benchmarks.peers import BATCH_WAIT_S, MAX_BATCH_SIZE, parse_args, ready_line
from msq.benchmarks.scenarios import SCENARIOS, InstanceValues
from msq.gateways.rest.ms_json import MSRestError, parse_instances

READY_LINE = ready_line("litserve")
#: How long to wait for LitServe's inference worker and HTTP server to come up.
READY_TIMEOUT_S = 120.0

#: One request as LitServe's inference worker holds it: its instances, or why it is invalid.
Parsed = list[InstanceValues] | MSRestError
#: One request's answer: its instances' outputs, or why it is invalid.
Answer = list[dict[str, np.ndarray]] | MSRestError


class ScenarioAPI(ls.LitAPI):  # type: ignore[misc]  # LitServe is untyped
    """`POST /model/{servable}:{method}` of one scenario, batched by LitServe."""

    def __init__(self, scenario: str, threads: int) -> None:
        spec = SCENARIOS[scenario]
        super().__init__(
            max_batch_size=MAX_BATCH_SIZE,
            batch_timeout=BATCH_WAIT_S,
            api_path=f"/model/{spec.servable}:{spec.method}",
        )
        self.scenario = scenario
        self.threads = threads
        self.compute: Compute | None = None

    def setup(self, device: str) -> None:
        """Load and warm up the scenario's model (in the inference worker process)."""
        self.compute = load_compute(self.scenario, self.threads)

    def decode_request(self, request: Request, **kwargs: Any) -> Parsed:
        """The request's instances; `request` is its JSON document, which LitServe parsed."""
        try:
            return instance_values(parse_instances(request))
        except MSRestError as exc:
            return exc

    def batch(self, inputs: list[Parsed]) -> list[Parsed]:
        """Requests stay separate; `predict` runs their instances together."""
        return inputs

    def predict(self, x: list[Parsed], **kwargs: Any) -> list[Answer]:
        """Run the work once on the instances of every valid request of the batch."""
        assert self.compute is not None, "setup() loads the model first"
        flat = [values for parsed in x if isinstance(parsed, list) for values in parsed]
        outputs = iter(self.compute(flat) if flat else [])
        return [
            parsed if isinstance(parsed, MSRestError) else [next(outputs) for _ in parsed]
            for parsed in x
        ]

    def unbatch(self, output: list[Answer]) -> list[Answer]:
        """One answer per request, as `predict` made them."""
        return output

    def encode_response(self, output: Answer, **kwargs: Any) -> Response:
        """The MindSpore Serving JSON reply (an error message for an invalid request)."""
        if isinstance(output, MSRestError):
            return Response(error_body(str(output)), media_type="application/json")
        return Response(reply_body(output), media_type="application/json")


def _announce_when_healthy(port: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1.0) as reply:
                if reply.status == 200:
                    print(READY_LINE, file=sys.stderr, flush=True)
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(__doc__.splitlines()[0], argv)
    api = ScenarioAPI(args.scenario, args.threads)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1)
    threading.Thread(target=_announce_when_healthy, args=(args.port,), daemon=True).start()
    server.run(
        host="127.0.0.1",
        port=args.port,
        num_api_servers=1,
        generate_client_file=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
