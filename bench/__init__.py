"""Benchmarks: run with ``python -m bench.inbound_webhooks`` (see docs/benchmarks.md)."""
