"""msq.gateways: client protocols in front of the broker — `core` (protocol-neutral), `v2` (the
Open Inference Protocol), and one subpackage per transport (`grpc`, `rest`)."""
