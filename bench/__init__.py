"""Benchmarks and reference models (scripts run as ``python bench/<name>.py``; shared code importable as ``bench.<module>``)."""
