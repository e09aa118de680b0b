"""Calling a computation with Python values: pack and type-check the arguments (before
anything runs), fix the number of clients, run it in the current context, convert back."""

from __future__ import annotations

from fcore import structure
from fcore.execution import values
from fcore.execution.errors import needs_num_clients
from fcore.types import core
from fcore.types.errors import TypeMismatchError


def call(computation, argument, context):
    """Runs `computation` on its (packed) argument with the executor of the execution
    context `context`. Errors in the argument name the computation's `shown_as` if it has
    one (the computation the user called, where that one runs a twin of it)."""
    fn_type = computation.type_signature
    shown = computation.shown_as or computation
    runtime = None
    if fn_type.parameter is not None:
        try:
            runtime = values.to_runtime(argument, fn_type.parameter)
        except TypeMismatchError as e:
            raise TypeMismatchError(f"Calling {shown.name} ({shown.type_signature}): {e}",
                                    e.expected, e.found, e.path) from None
    num_clients = resolve_num_clients(computation, runtime, context.num_clients, shown)
    result = context.executor(computation, runtime, num_clients, context)
    return values.to_python(result, fn_type.result)


def resolve_num_clients(computation, runtime_argument, given, shown=None):
    """The number of clients: fixed by client-placed arguments, else `given` (the
    context's). A computation whose type mentions CLIENTS and has neither fails here, with
    how to fix it (naming `shown`, by default the computation)."""
    fn_type = computation.type_signature
    named = computation if shown is None else shown  # what messages name
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
    if num_clients is None and structure.mentions(fn_type, _at_clients):
        raise needs_num_clients(f"'{named.name}' ({named.type_signature})")
    return num_clients


def _at_clients(type_):
    return isinstance(type_, core.FederatedType) and type_.placement.name == "CLIENTS"
