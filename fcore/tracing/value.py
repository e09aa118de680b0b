"""`Value`: the symbolic stand-in for data while a federated computation is traced."""

from __future__ import annotations

import numpy as np

from fcore.ir import nodes
from fcore.struct import python_items
from fcore.tracing import context
from fcore.types import core

_MOVE_TO_TF = ("{what} is not allowed on {value} inside a federated_computation: federated "
               "computations only orchestrate. Move this code into an @fcore.tf_computation "
               "and apply it with fcore.federated_map (or call it on an unplaced value).")


class Value:
    """A typed symbolic value. `.type_signature` is its type; attribute access and indexing
    select struct elements (mapped over each client for federated structs); calling a
    function-typed value calls it."""

    __slots__ = ("_node", "python_type")

    def __init__(self, node: nodes.Node, python_type=None):
        object.__setattr__(self, "_node", node)
        # The type with the Python containers the value should come back as (or None).
        object.__setattr__(self, "python_type", python_type)

    @property
    def type_signature(self):
        return self._node.type_signature

    @property
    def node(self):
        return self._node

    def __repr__(self):
        return f"Value({self._node} : {self.type_signature})"

    def __str__(self):
        return str(self._node)

    def __dir__(self):
        names = [n for n in _struct_of(self.type_signature).names() if n] \
            if _struct_of(self.type_signature) is not None else []
        return list(super().__dir__()) + names

    def __getattr__(self, name):
        if name.startswith("__") or _struct_of(self.type_signature) is None:
            # Not a struct: TensorFlow and NumPy probe attributes such as `shape` and then
            # try a conversion, which `__tf_tensor__` and `__array__` explain.
            raise AttributeError(f"{self} of type {self.type_signature} has no attribute "
                                 f"{name!r}: only structs have named elements.")
        return _select(self, name=name)

    def __getitem__(self, key):
        if isinstance(key, str):
            return _select(self, name=key)
        if isinstance(key, (int, np.integer)):
            return _select(self, index=int(key))
        raise TypeError(f"Cannot index {self} with {key!r}; use an int or a name.")

    def __len__(self):
        struct = _struct_of(self.type_signature)
        if struct is None:
            raise TypeError(f"{self} has no length: its type {self.type_signature} is not a "
                            f"struct.")
        return len(struct)

    def __iter__(self):
        struct = _struct_of(self.type_signature)
        if struct is None:
            raise TypeError(f"Cannot iterate over {self} of type {self.type_signature}; only "
                            f"structs can be unpacked in a federated_computation.")
        return (self[name] if name is not None else self[i]
                for i, name in enumerate(struct.names()))

    def __call__(self, *args, **kwargs):
        from fcore.tracing import calls
        return calls.call(self._node, args, kwargs, str(self._node))

    def __setattr__(self, key, value):
        raise AttributeError("Values are immutable")

    def __bool__(self):
        raise TypeError(_MOVE_TO_TF.format(what="Python control flow (a truth test)",
                                           value=_described(self)))

    def __tf_tensor__(self, dtype=None, name=None):
        raise TypeError(_MOVE_TO_TF.format(what="A TensorFlow operation", value=_described(self)))

    def __array__(self, *args, **kwargs):
        raise TypeError(_MOVE_TO_TF.format(what="A NumPy operation", value=_described(self)))


def _arithmetic(symbol):
    def method(self, *args):
        raise TypeError(_MOVE_TO_TF.format(what=f"The operator {symbol}", value=_described(self)))
    return method


for _name, _symbol in [("add", "+"), ("sub", "-"), ("mul", "*"), ("truediv", "/"),
                       ("floordiv", "//"), ("mod", "%"), ("pow", "**"), ("matmul", "@")]:
    setattr(Value, f"__{_name}__", _arithmetic(_symbol))
    setattr(Value, f"__r{_name}__", _arithmetic(_symbol))
for _name, _symbol in [("neg", "unary -"), ("abs", "abs()"), ("lt", "<"), ("le", "<="),
                       ("gt", ">"), ("ge", ">=")]:
    setattr(Value, f"__{_name}__", _arithmetic(_symbol))


def _described(value):
    kind = "the federated value" if isinstance(value.type_signature, core.FederatedType) \
        else "the value"
    return f"{kind} {value} of type {value.type_signature}"


def _struct_of(type_):
    if isinstance(type_, core.StructType):
        return type_
    if isinstance(type_, core.FederatedType) and isinstance(type_.member, core.StructType):
        return type_.member
    return None


def _select(value, name=None, index=None):
    type_ = value.type_signature
    if isinstance(type_, core.FederatedType) and isinstance(type_.member, core.StructType):
        # Selecting from a federated struct maps the selection over its members.
        from fcore.tracing import intrinsics as api
        ctx = context.current()
        key = (value.node, type_.member.index_of(name) if name is not None else index)
        if ctx is not None and key in ctx.selections:  # select each element only once
            return ctx.selections[key]
        param = nodes.Reference("_arg", type_.member)
        selector = nodes.Lambda("_arg", type_.member, nodes.Selection(param, name, index))
        selected = api.federated_map(Value(selector), value)
        if ctx is not None:
            ctx.selections[key] = selected
        return selected
    return Value(nodes.Selection(value.node, name=name, index=index))


def bind(node: nodes.Node, python_type=None) -> Value:
    """Binds `node` to a fresh local of the current trace and returns a reference to it."""
    ctx = context.current()
    if ctx is None or isinstance(node, (nodes.Reference, nodes.Literal)):
        return Value(node, python_type)
    return Value(ctx.bind(node), python_type)


def to_node(value, type_hint=None) -> nodes.Node:
    """Converts a `Value`, computation, struct-like container or Python constant to IR."""
    from fcore.tracing import computation
    if isinstance(value, Value):
        return value.node
    if isinstance(value, nodes.Node):
        return value
    if isinstance(value, computation.PolymorphicComputation):
        if type_hint is None:
            raise TypeError(f"The polymorphic computation {value.name} needs an argument type "
                            f"here; decorate it with types, or call it on a value.")
        return value.instantiate(type_hint).ir
    if isinstance(value, computation.Computation):
        return value.ir
    if isinstance(value, core.PlacementType):
        raise TypeError("A placement type is not a value.")
    from fcore.types.placements import PlacementLiteral
    if isinstance(value, PlacementLiteral):
        return nodes.Placement(value)
    items = python_items(value)
    if items is not None:
        return nodes.Struct([(None if n is None else str(n), to_node(v)) for n, v in items[0]])
    if callable(value) and not isinstance(value, (np.ndarray, np.generic)):
        raise TypeError(f"Cannot use the Python function {getattr(value, '__name__', value)} "
                        f"as a value here; decorate it with @fcore.tf_computation or "
                        f"@fcore.federated_computation.")
    try:
        return nodes.Literal(value)
    except (TypeError, ValueError) as e:
        raise TypeError(f"Cannot use {value!r} (Python type {type(value).__name__}) in a "
                        f"federated computation: {e}") from None
