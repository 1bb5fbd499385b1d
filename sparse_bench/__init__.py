"""sparse-bench: reference sparsely activated layers, theory checks and speed benchmarks."""

__version__ = "0.1.0"
