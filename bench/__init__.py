"""Benchmarks: each module is run from the repository root as `.venv/bin/python -m bench.<name>`
(`make bench` runs them all) and saves its figures as JSON into bench/results/."""
