"""Deterministic synthetic data for the demo and the benchmarks."""
