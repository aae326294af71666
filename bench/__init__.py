"""Benchmarks that print figures, never assert on time: our renewal against certbot on the same local stack.

`python -m bench.run --help`; certbot lives in a venv of its own (`python -m bench.certbot_venv`).
"""
