"""msq.broker."""
