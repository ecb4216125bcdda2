"""Benchmarks: `python -m bench.batch` (bulk replenishments) and friends. See README."""
