"""Calling a computation with Python values: pack and type-check the arguments (before
anything runs), fix the number of clients, run it in the current context, convert back."""

from __future__ import annotations

from fcore.execution import context, reference, streaming, values
from fcore.execution.errors import needs_num_clients
from fcore.tracing.calls import pack_arguments
from fcore.types import core
from fcore.types.errors import TypeMismatchError

_EXECUTORS = {"reference": reference.run, "fast": streaming.run}


def call(computation, args, kwargs, shown=None):
    """Runs `computation`; errors in the arguments name `shown` (default: the computation),
    the computation the user called where that one runs a twin of it."""
    fn_type = computation.type_signature
    shown = computation if shown is None else shown
    argument = pack_arguments(fn_type.parameter, args, kwargs, shown.name)
    runtime = None
    if fn_type.parameter is not None:
        try:
            runtime = values.to_runtime(argument, fn_type.parameter)
        except TypeMismatchError as e:
            raise TypeMismatchError(f"Calling {shown.name} ({shown.type_signature}): {e}",
                                    e.expected, e.found, e.path) from None
    num_clients = resolve_num_clients(computation, runtime, shown)
    current = context.current()
    if current.kind == "dask":
        from fcore.execution import distributed
        result = distributed.run(computation, runtime, num_clients, current.progress,
                                 current.dask)
    else:
        result = _EXECUTORS[current.kind](computation, runtime, num_clients, current.progress)
    return values.to_python(result, fn_type.result)


def resolve_num_clients(computation, runtime_argument, shown=None):
    """The number of clients: fixed by client-placed arguments, else by the context. A
    computation whose type mentions CLIENTS and has neither fails here, with how to fix it
    (naming `shown`, by default the computation)."""
    fn_type = computation.type_signature
    named = computation if shown is None else shown  # what messages name
    given = context.current().num_clients
    counted = None
    if fn_type.parameter is not None:
        try:
            counted = values.count_clients(runtime_argument, fn_type.parameter)
        except TypeMismatchError as e:
            raise TypeMismatchError(f"Calling {named.name}: {e}", e.expected, e.found,
                                    e.path) from None
    if counted is not None and given is not None and counted != given:
        raise TypeMismatchError(
            f"Calling {named.name}: the execution context has num_clients={given}, but "
            f"the client-placed arguments have {counted} clients.",
            expected=given, found=counted)
    num_clients = counted if counted is not None else given
    if num_clients is None and _mentions_clients(fn_type):
        raise needs_num_clients(f"'{named.name}' ({named.type_signature})")
    return num_clients


def _mentions_clients(type_):
    if isinstance(type_, core.FederatedType):
        return type_.placement.name == "CLIENTS"
    return any(_mentions_clients(t) for t in _children(type_))


def _children(type_):
    if isinstance(type_, core.FunctionType):
        return [t for t in (type_.parameter, type_.result) if t is not None]
    return type_.children()
