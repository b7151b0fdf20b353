"""msq.gateways."""
