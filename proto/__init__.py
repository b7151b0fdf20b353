"""Every wire format of msq: the internal ZeroMQ protocol, its tensor codec and the gRPC protos."""
