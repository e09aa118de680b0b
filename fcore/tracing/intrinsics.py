"""The intrinsics as user functions, used inside `@fcore.federated_computation`.

Each builds an `Intrinsic` node at the concrete type its rule in `definitions` computes (a
`TypeError` there means a misuse, reported when the computation is defined), calls it, and
returns a symbolic `Value`."""

from __future__ import annotations

from fcore.intrinsics.definitions import lookup
from fcore.ir import nodes
from fcore.tracing import value as values
from fcore.tracing.value import Value
from fcore.types import core
from fcore.struct import Struct, python_items
from fcore.types.placements import CLIENTS, SERVER, to_placement


def _apply(uri, *arguments, containers_from=None):
    """Calls intrinsic `uri` on IR nodes (several are packed into an unnamed struct).
    `containers_from`: a Python container whose kind the result's struct should come back as."""
    argument = arguments[0] if len(arguments) == 1 else nodes.Struct(
        [(None, a) for a in arguments])
    fn_type = lookup(uri).function_type(argument.type_signature)
    python_type = None
    if containers_from is not None:
        result = fn_type.result
        member = _member_containers(containers_from, result.member)
        python_type = core.FederatedType(member, result.placement, result.all_equal)
    return values.bind(nodes.Call(nodes.Intrinsic(uri, fn_type), argument), python_type)


def _member_containers(value, type_):
    """`type_` (the member type of a zip of `value`) with the Python containers of `value`
    recorded on its structs, at every level."""
    if isinstance(value, Value):
        python_type = value.python_type
        if isinstance(python_type, core.FederatedType) and python_type.member == type_:
            return python_type.member
        return type_
    items = python_items(value)
    if items is None or not isinstance(type_, core.StructType) or isinstance(value, Struct):
        return type_
    pairs, container = items
    container = list if isinstance(value, list) else container
    return core.StructType([(n, _member_containers(v, t)) for (n, t), (_, v) in
                            zip(type_.items(), pairs)], container)


def _container_of(value):
    import collections
    if isinstance(value, collections.abc.Mapping):
        return collections.OrderedDict
    if isinstance(value, (list, tuple)) and not isinstance(value, Value):
        return type(value)
    return None


def _node(value, type_hint=None):
    return values.to_node(value, type_hint)


def _function(fn, parameter_type):
    """IR for a function argument; polymorphic computations and plain Python functions are
    instantiated (traced) at `parameter_type`."""
    from fcore.tracing import computation
    if isinstance(fn, (computation.PolymorphicComputation, computation.Computation, Value,
                       nodes.Node)):
        return _node(fn, parameter_type)
    if callable(fn):
        return computation.trace_lambda(fn, parameter_type)
    return _node(fn)


def federated_broadcast(value):
    """`(T@SERVER -> T@CLIENTS)`: the server value, equal at every client."""
    return _apply("federated_broadcast", _node(value))


def federated_map(fn, value):
    """`(<(T -> U),{T}@CLIENTS> -> {U}@CLIENTS)`, or `(<(T -> U),T@SERVER> -> U@SERVER)`.

    A struct (or Python list, tuple or dict) of federated values at one placement is zipped
    first, as in TFF: `federated_map(fn, [a, b])` maps over `federated_zip([a, b])`."""
    node = _node(value)
    type_ = node.type_signature
    if isinstance(type_, core.StructType) and len(_placements(type_)) == 1:
        node = _node(federated_zip(value))
        type_ = node.type_signature
    value = node
    member = type_.member if isinstance(type_, core.FederatedType) else None
    if member is None:
        raise TypeError(f"The value to be mapped must be a FederatedType or implicitly "
                        f"convertible to a FederatedType (got a {type_}).")
    uri = "federated_apply" if type_.placement is SERVER else "federated_map"
    return _apply(uri, _function(fn, member), value)


def federated_sum(value):
    """`({T}@CLIENTS -> T@SERVER)`: the sum of the clients' values."""
    return _apply("federated_sum", _node(value))


def federated_mean(value, weight=None):
    """`({T}@CLIENTS -> T@SERVER)`, or weighted: `(<{T}@CLIENTS,{U}@CLIENTS> -> T@SERVER)`."""
    if weight is None:
        return _apply("federated_mean", _node(value))
    return _apply("federated_weighted_mean", _node(value), _node(weight))


federated_average = federated_mean


def federated_min(value):
    """`({T}@CLIENTS -> T@SERVER)`: the element-wise minimum over clients."""
    return _apply("federated_min", _node(value))


def federated_max(value):
    """`({T}@CLIENTS -> T@SERVER)`: the element-wise maximum over clients."""
    return _apply("federated_max", _node(value))


def federated_aggregate(value, zero, accumulate, merge, report):
    """`(<{T}@CLIENTS,U,(<U,T> -> U),(<U,U> -> U),(U -> R)> -> R@SERVER)`."""
    value = _node(value)
    zero = _node(zero)
    member = value.type_signature.member if isinstance(value.type_signature,
                                                       core.FederatedType) else None
    accumulate = _function(accumulate, core.StructType([zero.type_signature, member])
                           if member is not None else None)
    acc_type = accumulate.type_signature.result if isinstance(
        accumulate.type_signature, core.FunctionType) else zero.type_signature
    merge = _function(merge, core.StructType([acc_type, acc_type]))
    merge_type = merge.type_signature.result if isinstance(
        merge.type_signature, core.FunctionType) else acc_type
    report = _function(report, merge_type)
    return _apply("federated_aggregate", value, zero, accumulate, merge, report)


def federated_value(value, placement):
    """`(T -> T@SERVER)` or `(T -> T@CLIENTS)`: a constant placed (all-equal)."""
    placement = to_placement(placement)
    node = _node(value)
    if core.find_path(node.type_signature, (core.FederatedType,)) is not None:
        name = str(value) if isinstance(value, Value) else repr(value)
        raise TypeError(f"Cannot place value {name} containing federated types at another "
                        f"placement; requested to be placed at {placement.name}.")
    return _apply(f"federated_value_at_{placement.uri}", node)


def federated_eval(fn, placement):
    """`(( -> T) -> T@SERVER)` or `(( -> T) -> {T}@CLIENTS)`: runs `fn` at the placement."""
    placement = to_placement(placement)
    return _apply(f"federated_eval_at_{placement.uri}", _function(fn, None))


def federated_zip(value):
    """A struct of federated values (all at one placement) as one federated struct:
    `<a=int32@SERVER,b=float32@SERVER>` -> `<a=int32,b=float32>@SERVER`."""
    node = _node(value)
    placements = _placements(node.type_signature)
    placement = CLIENTS if placements == {"CLIENTS"} else SERVER
    plain = not isinstance(value, (Value, nodes.Node, Struct)) and _container_of(value)
    return _apply(f"federated_zip_at_{placement.uri}", node,
                  containers_from=value if plain else None)


def _placements(type_):
    if isinstance(type_, core.FederatedType):
        return {type_.placement.name}
    if isinstance(type_, core.StructType):
        return set().union(*[_placements(t) for t in type_]) if len(type_) else set()
    return set()


def federated_secure_sum(value, max_input):
    """`(<{V}@CLIENTS,M> -> V@SERVER)`: the sum of integer client values in [0, max_input].
    Simulated: each value is checked against its bound, then summed modulo
    `num_clients * max_input + 1`, the smallest range that holds every valid sum."""
    return _apply("federated_secure_sum", _node(value), _node(max_input))


def federated_secure_sum_bitwidth(value, bitwidth):
    """`(<{V}@CLIENTS,B> -> V@SERVER)`: the sum of integer client values in
    [0, 2**bitwidth - 1]. Simulated: values are checked, then summed modulo
    `2**(bitwidth + ceil(log2(num_clients)))`, as the protocol's accumulator would."""
    return _apply("federated_secure_sum_bitwidth", _node(value), _node(bitwidth))


def sequence_map(fn, sequence):
    """`(<(T -> U),T*> -> U*)`: applies `fn` to each element. On a federated sequence
    (`{T*}@CLIENTS` or `T*@SERVER`), it does so at each member, as in TFF."""
    sequence = _node(sequence)
    if _is_federated_sequence(sequence.type_signature):
        return federated_map(lambda member: sequence_map(fn, member), sequence)
    element = sequence.type_signature.element if isinstance(
        sequence.type_signature, core.SequenceType) else None
    return _apply("sequence_map", _function(fn, element), sequence)


def sequence_reduce(sequence, zero, op):
    """`(<T*,U,(<U,T> -> U)> -> U)`: folds the elements into `zero` with `op`. On a federated
    sequence, at each member."""
    sequence = _node(sequence)
    if _is_federated_sequence(sequence.type_signature):
        return federated_map(lambda member: sequence_reduce(member, zero, op), sequence)
    zero = _node(zero)
    element = sequence.type_signature.element if isinstance(
        sequence.type_signature, core.SequenceType) else None
    op = _function(op, core.StructType([zero.type_signature, element])
                   if element is not None else None)
    return _apply("sequence_reduce", sequence, zero, op)


def sequence_sum(sequence):
    """`(T* -> T)`: the sum of the elements. On a federated sequence, at each member:
    `({T*}@CLIENTS -> {T}@CLIENTS)`."""
    sequence = _node(sequence)
    if _is_federated_sequence(sequence.type_signature):
        return federated_map(sequence_sum, sequence)
    return _apply("sequence_sum", sequence)


def _is_federated_sequence(type_):
    return isinstance(type_, core.FederatedType) and \
        isinstance(type_.member, core.SequenceType)
