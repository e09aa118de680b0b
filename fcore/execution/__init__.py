"""Running computations: converting call-time values and executing them.

Importing this package registers the executors (reference, fast, Dask) with the execution
contexts."""

from fcore.execution import distributed, reference, streaming  # noqa: F401 (registration)
