"""The Open Inference Protocol (KServe V2) over the broker, for every front-end.

The gRPC (`msq.gateways.grpc.v2`) and REST (`msq.gateways.rest.v2`) front-ends only translate
their messages into these calls and these results back; models, readiness, documents and the
one infer flow (request -> broker request -> response tensors) are here. Every failure is a
`GatewayError`, which each front-end answers with its kind's status
(`msq.gateways.core.errors`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from msq.gateways.core.catalog import Catalog
from msq.gateways.core.errors import GatewayError
from msq.gateways.core.link import BrokerLink
from msq.gateways.v2.documents import statistics
from msq.gateways.v2.models import V2Model, parse_version, resolve
from msq.gateways.v2.repository import Repository
from msq.gateways.v2.tensors import V2Tensor, check_outputs, to_columns, to_outputs
from msq.proto.columns import Outcomes, count_rows
from msq.proto.deadline import Deadline
from msq.proto.errors import ErrorKind


@dataclass(frozen=True, slots=True)
class InferCall:
    """A decoded V2 infer request, whatever protocol it came by."""

    model_name: str
    model_version: str
    inputs: Sequence[V2Tensor]
    #: The outputs asked for, in order (empty: every output of the model).
    outputs: Sequence[str]
    deadline: Deadline
    #: The request id (`msq.gateways.core.request_ids`; empty: the link makes one).
    request_id: str = ""


#: Readiness answers come from a broker status at most this old (seconds), so a probe right
#: after a worker registered (or left) sees it.
READINESS_MAX_AGE_S = 0.1


@dataclass(frozen=True, slots=True)
class InferAnswer:
    """The outcome of a successful infer call."""

    model: V2Model
    #: The servable version that ran the request.
    version: int
    outputs: list[V2Tensor]


class V2Service:
    """V2 models, readiness, statistics and inference through one broker link."""

    def __init__(self, link: BrokerLink, catalog: Catalog) -> None:
        self._link = link
        self._catalog = catalog
        #: The model repository extension (index, load, unload).
        self.repository = Repository(link)

    async def model(self, name: str, version: str = "") -> V2Model:
        """The model `name` at `version`; raise `GatewayError` (NOT_FOUND, ...) without one."""
        return await self._catalog.find(lambda status: resolve(status, name, version))

    async def check_server_ready(self) -> None:
        """Raise `GatewayError` (WORKER_UNAVAILABLE) unless the broker answers and a worker is
        ready."""
        status = await self._catalog.status(max_age_s=READINESS_MAX_AGE_S)
        if status is None:
            raise GatewayError(
                ErrorKind.WORKER_UNAVAILABLE, "not ready: the broker does not answer"
            )
        if not any(info.workers > 0 for info in status.servables):
            raise GatewayError(
                ErrorKind.WORKER_UNAVAILABLE, "not ready: no worker serves any model yet"
            )

    async def check_model_ready(self, name: str, version: str = "") -> V2Model:
        """The model, when a worker serves it; else raise `GatewayError` (NOT_FOUND,
        WORKER_UNAVAILABLE)."""
        status = await self._catalog.require(max_age_s=READINESS_MAX_AGE_S)
        model = resolve(status, name, version)
        if model.workers == 0:
            raise GatewayError(
                ErrorKind.WORKER_UNAVAILABLE, f"model {name!r} is not ready: no worker serves it"
            )
        return model

    async def statistics(self, name: str = "", version: str = "") -> list[dict[str, Any]]:
        """Fresh statistics of model `name` (every model when empty)."""
        return statistics(await self._catalog.require(max_age_s=0.0), name, version)

    async def infer(self, call: InferCall) -> InferAnswer:
        """Run the model on the call's inputs (one msq row per batch row) by its deadline."""
        model = await self.model(call.model_name, call.model_version)
        check_outputs(model, call.outputs)
        columns = to_columns(model, call.inputs)
        reply = await self._link.infer(
            model.servable,
            model.method.name,
            columns,
            # No version asked: the broker picks the newest it routes to now (the cached
            # catalog may still name a version that has started to drain).
            version=parse_version(call.model_version) and model.version,
            deadline=call.deadline,
            rid=call.request_id,
        )
        if reply.error is not None:
            raise GatewayError.of(reply.error)
        outcomes = Outcomes(reply.columns, reply.failures, count_rows(columns))
        outputs = to_outputs(model, outcomes, call.outputs)
        return InferAnswer(model, reply.version or model.version, outputs)
