"""Calling computations and function-typed values while tracing: packing Python arguments
into the parameter's struct, type checking them, and binding the call."""

from __future__ import annotations

from fcore.computation import pack_arguments
from fcore.ir import nodes
from fcore.tracing import value as values
from fcore.types import core


def call(function_node: nodes.Node, args, kwargs, name, python_type=None):
    """Traces a call of `function_node` with Python/symbolic arguments; returns a `Value`
    (whose `python_type`, the callee's result type with containers, is kept for results)."""
    fn_type = function_node.type_signature
    if not isinstance(fn_type, core.FunctionType):
        raise TypeError(f"{name} is not a function: its type is {fn_type}.")
    return call_packed(function_node, pack_arguments(fn_type.parameter, args, kwargs, name),
                       python_type)


def call_packed(function_node: nodes.Node, argument, python_type=None):
    """Traces a call of `function_node` with its one argument (packed from Python arguments,
    or None)."""
    fn_type = function_node.type_signature
    if argument is None:
        return values.bind(nodes.Call(function_node), python_type)
    node = values.to_node(argument, fn_type.parameter)
    node = _fit_struct(node, fn_type.parameter)
    return values.bind(nodes.Call(function_node, node), python_type)


def _fit_struct(node, parameter_type):
    """A one-element struct parameter also accepts its element alone; an unnamed struct
    built from Python arguments takes the parameter's names."""
    arg_type = node.type_signature
    if isinstance(parameter_type, core.StructType) and not isinstance(arg_type, core.StructType) \
            and len(parameter_type) == 1:
        return nodes.Struct([(parameter_type.items()[0][0], node)])
    if isinstance(node, nodes.Struct) and isinstance(parameter_type, core.StructType) and \
            len(node.elements) == len(parameter_type) and \
            all(n is None for n, _ in node.elements):
        return nodes.Struct([(p_name, el) for (p_name, _), (_, el) in
                             zip(parameter_type.items(), node.elements)])
    return node


def call_unpacked(fn, pairs, what=None):
    """Calls the Python function `fn` with the elements of a struct, as TFF unpacks a struct
    argument: unnamed elements by position, named ones by name (as keyword arguments), so
    `<v=y,w=x>` given to `def f(w, v)` binds `w=x`. `pairs` are `(name or None, value)`."""
    import inspect
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        parameters = None
    if parameters is not None and not any(p.kind == p.VAR_KEYWORD
                                          for p in parameters.values()):
        accepted = [n for n, p in parameters.items()
                    if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        unknown = [n for n, _ in pairs if n is not None and n not in accepted]
        if unknown:
            shown = what or getattr(fn, "__name__", "the function")
            raise TypeError(f"{shown} has no parameter named {unknown[0]!r} (its parameters: "
                            f"{', '.join(parameters) or 'none'}); the elements of a named "
                            f"struct argument are passed by name.")
    args = [v for n, v in pairs if n is None]
    kwargs = {n: v for n, v in pairs if n is not None}
    return fn(*args, **kwargs)
