"""Benchmarks: measured ratios, same run, same machine (never timed assertions in tests)."""
