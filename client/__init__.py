"""msq.client."""
