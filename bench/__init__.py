"""Benchmarks of the course trainers and models; shared tools in :mod:`bench.harness` (see bench/README.md)."""
