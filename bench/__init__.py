"""Benchmarks and reference models, installed with the project: each script runs as ``python bench/<name>.py`` or
``python -m bench.<name>``; shared code is importable as ``bench.<module>``."""
