"""Tracing Python functions into computations: symbolic values, contexts, decorators."""
