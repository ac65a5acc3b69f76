"""Benchmarks of agentfield-arq against same-run baselines: `python -m bench` (see README)."""
