"""The gRPC gateway (`msq-grpc-gateway`): MindSpore Serving's MSService and the V2
GRPCInferenceService on one grpc.aio server."""
