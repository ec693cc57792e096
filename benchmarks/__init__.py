"""The pipeline's speed and cost, each benchmark run in the repository root: python -m benchmarks.<name>."""
