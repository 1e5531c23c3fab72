"""The benchmark harness (``python -P experiments/run.py``); never imported by jsparse itself."""
