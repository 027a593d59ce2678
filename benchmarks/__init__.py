"""Benchmarks of fl_blocks (timing lives here, never in the tests): ``python -m benchmarks --help``."""
