"""msq.benchmarks."""
