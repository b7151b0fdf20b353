"""msq.workers."""
