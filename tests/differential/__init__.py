"""Differential tests: random well-typed fcore programs checked against a NumPy oracle."""
