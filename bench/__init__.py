"""Benchmarks that print figures: end-to-end throughput, and mapping and parsing speed."""
