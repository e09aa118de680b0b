"""Execution contexts: which executor runs computations, and how many clients there are.

An `ExecutionContext` is a context of `fcore.context_stack`: installed with
`fcore.execution_context(...)`, it runs the computations called inside the `with` block.
Executors register themselves by kind (`register_executor`); the default context, used
when none is installed, runs the fast executor."""

from __future__ import annotations

import contextlib

from fcore import context_stack

_EXECUTORS: dict = {}  # kind -> run(computation, runtime argument, num_clients, context)


def register_executor(kind, run, needs=None):
    """Registers `run` as the executor of `kind`. `needs`: the keyword option this kind
    requires (the Dask executor needs `dask=`), or None."""
    _EXECUTORS[kind] = (run, needs)


def kinds():
    return tuple(_EXECUTORS)


class ExecutionContext(context_stack.Context):
    def __init__(self, kind=None, num_clients=None, progress=None, dask=None):
        if dask is not None:
            if kind not in (None, "dask"):
                raise ValueError(f"execution_context({kind!r}, dask=...): dask= runs the Dask "
                                 f"executor; leave the kind out (or give 'dask').")
            kind = "dask"
        elif kind is None:
            kind = "fast"
        if kind not in _EXECUTORS:
            raise ValueError(f"Unknown execution context {kind!r}; expected one of: "
                             f"{', '.join(_EXECUTORS)}.")
        if _EXECUTORS[kind][1] == "dask" and dask is None:
            raise ValueError("The Dask executor needs dask=: a scheduler address such as "
                             "'tcp://scheduler:8786' or a distributed.Client.")
        if num_clients is not None and (not isinstance(num_clients, int) or num_clients < 0):
            raise ValueError(f"num_clients must be an int >= 0, found {num_clients!r}.")
        if progress is not None and not callable(progress):
            raise TypeError(f"progress must be a function (done, total), found {progress!r}.")
        self.kind = kind
        self.num_clients = num_clients
        self.progress = progress
        self.dask = dask

    @property
    def executor(self):
        """`run(computation, runtime argument, num_clients, context)` of this kind."""
        return _EXECUTORS[self.kind][0]

    def invoke(self, computation, argument):
        from fcore.execution import runner
        return runner.call(computation, argument, self)

    def __repr__(self):
        return f"ExecutionContext({self.kind!r}, num_clients={self.num_clients})"


class _DefaultContext(ExecutionContext):
    """The context used when none is installed: the fast executor."""

    def __init__(self):  # validated lazily: the executors register after this module
        self.kind, self.num_clients, self.progress, self.dask = "fast", None, None, None


_DEFAULT = _DefaultContext()
context_stack.set_default(_DEFAULT)


def current() -> ExecutionContext:
    """The innermost installed execution context, else the default one."""
    return context_stack.innermost(ExecutionContext) or _DEFAULT


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
    with context_stack.install(ExecutionContext(kind, num_clients, progress, dask)) as context:
        yield context
