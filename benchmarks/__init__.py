"""Benchmarks (not tests): `python -m benchmarks` or `make bench`. Results: docs/benchmarks.md."""
