"""Execution contexts: which executor runs computations, and how many clients there are."""

from __future__ import annotations

import contextlib
import threading

_state = threading.local()
KINDS = ("reference", "fast", "dask")


class ExecutionContext:
    def __init__(self, kind=None, num_clients=None, progress=None, dask=None):
        if dask is not None:
            if kind not in (None, "dask"):
                raise ValueError(f"execution_context({kind!r}, dask=...): dask= runs the Dask "
                                 f"executor; leave the kind out (or give 'dask').")
            kind = "dask"
        elif kind is None:
            kind = "fast"
        elif kind == "dask":
            raise ValueError("The Dask executor needs dask=: a scheduler address such as "
                             "'tcp://scheduler:8786' or a distributed.Client.")
        if kind not in KINDS:
            raise ValueError(f"Unknown execution context {kind!r}; expected one of: "
                             f"{', '.join(KINDS)}.")
        if num_clients is not None and (not isinstance(num_clients, int) or num_clients < 0):
            raise ValueError(f"num_clients must be an int >= 0, found {num_clients!r}.")
        if progress is not None and not callable(progress):
            raise TypeError(f"progress must be a function (done, total), found {progress!r}.")
        self.kind = kind
        self.num_clients = num_clients
        self.progress = progress
        self.dask = dask

    def __repr__(self):
        return f"ExecutionContext({self.kind!r}, num_clients={self.num_clients})"


_DEFAULT = ExecutionContext()


def current() -> ExecutionContext:
    stack = getattr(_state, "stack", None)
    return stack[-1] if stack else _DEFAULT


@contextlib.contextmanager
def execution_context(kind=None, num_clients=None, progress=None, dask=None):
    """Runs the computations called inside the `with` block with executor `kind` ("fast", the
    default when no kind is given: streaming aggregation; "reference": the plain
    interpreter) and, where no client-placed argument fixes it, `num_clients` clients.
    `progress(done, total)`, if given, is called as each client's work in a `federated_map`
    finishes. `dask=` (a scheduler address or a `distributed.Client`) runs the client work on
    a Dask cluster.

        with fcore.execution_context(num_clients=3):
            broadcast(2.5)
    """
    context = ExecutionContext(kind, num_clients, progress, dask)
    if not hasattr(_state, "stack"):
        _state.stack = []
    _state.stack.append(context)
    try:
        yield context
    finally:
        _state.stack.pop()
