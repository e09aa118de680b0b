"""Computations and the decorators that make them: `@federated_computation` traces Python
into the IR with symbolic `Value`s; `@tf_computation` traces Python with `tf.function`."""

from __future__ import annotations

import functools
import inspect
import re

from fcore.computation import Computation
from fcore.ir import nodes
from fcore.tracing import calls, context
from fcore.tracing.value import Value, to_node
from fcore.types import core, dtypes
from fcore.struct import Struct, python_items
from fcore.types.conversion import to_type
from fcore.types.errors import TypeMismatchError

_TRACE_ERRORS = (TypeError, ValueError, AttributeError, IndexError, KeyError, NameError)


class PolymorphicTypeError(AttributeError, TypeError):
    """Asking a polymorphic computation for its type signature: it has none yet (so
    `hasattr(comp, 'type_signature')` is False, as for TFF's polymorphic functions)."""


class PolymorphicComputation:
    """A computation declared without types: traced (once per argument type) when it is
    called or used with concrete arguments."""

    def __init__(self, fn, kind, name):
        self._fn = fn
        self._kind = kind
        self.name = name
        self._instances: dict = {}
        functools.update_wrapper(self, fn, updated=())

    def instantiate(self, parameter_type) -> Computation:
        parameter_type = to_type(parameter_type)
        if parameter_type not in self._instances:
            self._instances[parameter_type] = _build(self._fn, self._kind, parameter_type,
                                                     self.name)
        return self._instances[parameter_type]

    def __call__(self, *args, **kwargs):
        from fcore.tracing.infer import infer_type
        if not args and not kwargs:
            parameter_type = None
        elif len(args) == 1 and not kwargs:
            parameter_type = infer_type(args[0])
        else:
            names = _python_parameter_names(self._fn)
            positional = [(names[i] if i < len(names) else None, infer_type(a))
                          for i, a in enumerate(args)]
            # Keyword arguments take their places in the Python signature's order.
            order = {name: i for i, name in enumerate(names)}
            keywords = sorted(kwargs.items(), key=lambda kv: order.get(kv[0], len(order)))
            parameter_type = core.StructType(
                positional + [(k, infer_type(v)) for k, v in keywords])
        return self.instantiate(parameter_type)(*args, **kwargs)

    @property
    def type_signature(self):
        raise PolymorphicTypeError(f"{self.name} is polymorphic: it has a type signature only "
                                   f"once it is called or given parameter types.")

    def __repr__(self):
        return f"<polymorphic {self._kind} computation {self.name}>"


def federated_computation(*args):
    """Decorates a Python function as a federated computation.

    `@federated_computation(T1, T2)` declares parameter types (several become a struct named
    after the Python parameters); bare `@federated_computation` is polymorphic, traced when
    first called or used. `federated_computation(lambda: 'Hello, World!')()` works too.
    """
    return _decorator("federated", args)


def tf_computation(*args):
    """Decorates a Python function as a TensorFlow computation (traced by `tf.function`).

    `@tf_computation(tf.int32, tf.int32) def add(x, y)` has type `(<x=int32,y=int32> ->
    int32)`; a `SequenceType` parameter arrives as a `tf.data.Dataset`. Without types it is
    polymorphic, traced per argument type at call time.
    """
    return _decorator("tf", args)


def _decorator(kind, args):
    if len(args) == 1 and _is_function(args[0]):
        return _declare(args[0], kind, None, polymorphic=True)
    if len(args) > 1 and _is_function(args[0]):  # TFF's functional form: (fn, *types)
        return _declare(args[0], kind, [to_type(a) for a in args[1:]], polymorphic=False)
    types = [to_type(a) for a in args]

    def decorate(fn):
        return _declare(fn, kind, types, polymorphic=False)
    return decorate


def _is_function(value):
    return callable(value) and not isinstance(value, (type, core.Type)) and \
        not dtypes.is_dtype_like(value)


def _display_name(fn, default="computation"):
    name = getattr(fn, "__name__", default)
    return "lambda" if name == "<lambda>" else name


def _declare(fn, kind, types, polymorphic):
    name = _display_name(fn)
    if polymorphic:
        if not _python_parameter_names(fn) and not _takes_varargs(fn):
            return _build(fn, kind, None, name)
        return PolymorphicComputation(fn, kind, name)
    return _build(fn, kind, _parameter_type(fn, types), name)


def _parameter_type(fn, types):
    names = _python_parameter_names(fn)
    name = getattr(fn, "__name__", "the function")
    varargs = _takes_varargs(fn)
    if not types:
        if names and not varargs:
            raise TypeError(f"{name} takes {len(names)} parameters, but no types were given.")
        return None
    if len(types) == 1:
        struct_fits = isinstance(types[0], core.StructType) and len(types[0]) == len(names)
        if len(names) > 1 and not struct_fits and not varargs:
            raise TypeError(f"{name} takes {len(names)} parameters ({', '.join(names)}), but "
                            f"one type, {types[0]}, was given.")
        return types[0]
    if len(names) == len(types):
        return core.StructType(list(zip(names, types)))
    if not varargs:
        raise TypeError(f"{name} takes {len(names)} parameters ({', '.join(names)}), but "
                        f"{len(types)} types were given.")
    return core.StructType(types)


def _python_parameter_names(fn):
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _takes_varargs(fn):
    try:
        return any(p.kind == p.VAR_POSITIONAL for p in inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False


def _build(fn, kind, parameter_type, name):
    try:
        if kind == "tf":
            from fcore.tracing.tf_function import TFFunction
            leaf = TFFunction(fn, parameter_type, name)
            return Computation(nodes.TFLeaf(name, leaf, leaf.type_signature), name)
        ir, result_type = _trace_federated(fn, parameter_type, name)
        return Computation(ir, name, result_type)
    except _TRACE_ERRORS as e:
        _annotate(e, kind, name, fn)
        raise


def trace_lambda(fn, parameter_type):
    """The IR lambda of a Python function traced at `parameter_type` inside the computation
    being traced (a function argument of an intrinsic); it may refer to that computation's
    names, so it is not a computation of its own."""
    name = _display_name(fn, "lambda")
    try:
        return _trace_federated(fn, parameter_type, name)[0]
    except _TRACE_ERRORS as e:
        _annotate(e, "federated", name, fn)
        raise


def _trace_federated(fn, parameter_type, name):
    names = _python_parameter_names(fn)
    spread = isinstance(parameter_type, core.StructType) and len(names) == len(
        parameter_type) and len(names) != 1
    # A function traced inside another trace (a nested computation, or a function given to
    # an intrinsic) may refer to the outer names: it draws its names from the same pool, so
    # its parameter and locals never shadow them.
    trace = context.TraceContext(parent=context.current())
    if parameter_type is None:
        parameter_name = None
    elif spread or not names:
        parameter_name = trace.unique("arg")
    else:
        parameter_name = trace.unique(names[0])
    with context.tracing(trace):
        if parameter_type is None:
            result = fn()
        else:
            parameter = Value(nodes.Reference(parameter_name, parameter_type))
            result = _call_unpacked(fn, parameter, parameter_type) if spread else \
                fn(parameter)
        body = to_node(result)
    result_type = _with_containers(result, body.type_signature)
    bindings = list(trace.bindings)
    if bindings and isinstance(body, nodes.Reference) and body.name == bindings[-1][0]:
        body = bindings.pop()[1]  # `(let ... in _varN)` reads better as the call itself
    if bindings:
        body = nodes.Block(bindings, body)
    return nodes.Lambda(parameter_name, parameter_type, body), result_type


def _call_unpacked(fn, parameter, parameter_type):
    pairs = [(name, parameter[index if name is None else name])
             for index, name in enumerate(parameter_type.names())]
    return calls.call_unpacked(fn, pairs)


def _with_containers(result, type_):
    """`type_` with the Python containers of the traced `result` recorded on its structs, so
    calls return tuples, OrderedDicts and namedtuples as the function did."""
    if isinstance(result, Value) and result.python_type is not None:
        return result.python_type
    items = python_items(result)
    if not isinstance(type_, core.StructType) or items is None or \
            isinstance(result, Struct):
        return type_
    pairs, container = items
    container = list if isinstance(result, list) else container
    return core.StructType([(n, _with_containers(v, t)) for (n, t), (_, v) in
                            zip(type_.items(), pairs)], container)


def _annotate(error, kind, name, fn):
    if getattr(error, "_fcore_annotated", False) or not error.args:
        return
    code = getattr(fn, "__code__", None)
    preferred = code.co_filename if code else None
    location = context.traceback_location(error.__traceback__, preferred)
    if code is not None and (location is None or kind == "tf" and
                             not location.startswith(preferred + ":")):
        # TensorFlow runs a converted copy of the function; its message names the user's line.
        found = re.search(rf'File "({re.escape(preferred)})", line (\d+), in '
                          rf'{re.escape(code.co_name)}\b', str(error))
        location = f"{found.group(1)}:{found.group(2)}" if found else \
            f"defined at {code.co_filename}:{code.co_firstlineno}"
    what = "federated computation" if kind == "federated" else "TF computation"
    message = f"{error.args[0]}\n  (in {what} '{name}', {location})"
    error.args = (message,) + error.args[1:]
    try:
        error._fcore_annotated = True
    except AttributeError:
        pass


__all__ = ["Computation", "PolymorphicComputation", "federated_computation", "tf_computation",
           "TypeMismatchError"]
