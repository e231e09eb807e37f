"""Benchmarks: a load generator, pgbench, and Python peers, measured in one run."""
