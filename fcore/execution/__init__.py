"""Running computations: converting call-time values and executing them.

Importing this package registers the executors (reference, fast, Dask) with the execution
contexts, and attaches their rules to the intrinsics (`fcore.intrinsics.definitions`):
"reference" (intrinsic_impls), "accumulator" (accumulators), "member" (streaming),
"in_graph" (lowering) and "merge_partials" (distributed)."""

from fcore.execution import (  # noqa: F401 (registration)
    accumulators, distributed, intrinsic_impls, lowering, reference, streaming)
