"""msq's Python client: MindSpore Serving's gRPC client API (`Client`, `SSLConfig`)."""

from msq.client.grpc_client import AsyncResult, Client, InstanceError, SSLConfig

__all__ = ["AsyncResult", "Client", "InstanceError", "SSLConfig"]
