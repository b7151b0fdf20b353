"""The V2 model repository RPCs (`RepositoryIndex`, `RepositoryModelLoad`,
`RepositoryModelUnload`) of `inference.GRPCInferenceService`, as tritonclient calls them
(`get_model_repository_index`, `load_model`, `unload_model`); the work is
`msq.gateways.v2.repository`'s. Failures end the call with their kind's gRPC status
(`msq.gateways.core.errors`), e.g. UNAVAILABLE "explicit model load / unload is not allowed if
polling is enabled" outside explicit model control."""

from __future__ import annotations

import grpc
from google.protobuf import json_format
from typing_extensions import override

from msq.gateways.grpc.aborts import answer
from msq.gateways.v2.service import V2Service
from msq.proto import grpc_predict_v2_pb2 as pb
from msq.proto import grpc_predict_v2_pb2_grpc as pb_grpc


class RepositoryRpcs(pb_grpc.GRPCInferenceServiceServicer):
    """The repository RPCs; the V2 gRPC service (`msq.gateways.grpc.v2`) derives from this
    and sets `_v2`."""

    _v2: V2Service

    @override
    async def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryIndexResponse:
        """Every servable version and its state (only the ready ones when `ready` is set)."""
        models = await answer(context, self._v2.repository.index(ready_only=request.ready))
        return json_format.ParseDict({"models": models}, pb.RepositoryIndexResponse())

    @override
    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryModelLoadResponse:
        """Load a servable; answered once its workers are ready."""
        await answer(context, self._v2.repository.load(request.model_name))
        return pb.RepositoryModelLoadResponse()

    @override
    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryModelUnloadResponse:
        """Unload a servable; answered once its workers drained and stopped."""
        await answer(context, self._v2.repository.unload(request.model_name))
        return pb.RepositoryModelUnloadResponse()
