"""Learning layer of fcore: data loading, partitioning and models for federated learning."""

from learning import data  # noqa: F401
