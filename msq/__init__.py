"""msq serves MindSpore models: a ZeroMQ broker, model workers, gRPC and REST gateways."""

__version__ = "0.1.0"
