"""msq.launcher."""
