"""What each intrinsic does on runtime values, for the reference interpreter: each intrinsic's
"reference" rule (`fcore.intrinsics.definitions`), attached here at import. Each takes the
interpreter, the intrinsic's concrete function type, and the runtime argument."""

from __future__ import annotations

import functools
import math

import numpy as np

from fcore import structure
from fcore.execution.errors import ExecutionError, dataset_check_error
from fcore.intrinsics.definitions import lookup
from fcore.struct import Struct
from fcore.types import core


def _implements(uri):
    def register(fn):
        return lookup(uri).def_rule("reference", fn)
    return register


def _cast(type_, value):
    array = np.asarray(value, dtype=type_.dtype)
    return array[()] if array.ndim == 0 else array


def _zeros(type_):
    if not type_.is_fully_defined():
        raise ExecutionError(f"Cannot make the zero of {type_} for zero clients: its shape is "
                             f"not fully known.")
    return _cast(type_, np.zeros(type_.shape))


def same_shapes(what, *values):
    """Raises unless the tensors `values` have one shape: members of a type with unknown
    dimensions (`float32[?]`) must agree to be summed, averaged or compared, not broadcast."""
    shapes = {np.shape(v) for v in values}
    if len(shapes) > 1:
        found = " and ".join(str(s) for s in sorted(shapes, key=str))
        raise ExecutionError(f"{what}: expected members of one shape, found shapes {found} "
                             f"(values of unknown dimensions must agree to be combined).")


def _sum(type_, members, what="federated_sum"):
    def add(t, *xs):
        same_shapes(what, *xs)
        if not xs:
            return _zeros(t)
        if t.dtype.kind in "iu":  # exactly, in Python ints: no silent wrap-around
            return exact_sum(t, functools.reduce(np.add, [exact(x) for x in xs]), what)
        return _cast(t, functools.reduce(np.add, xs))
    return structure.map_structure(add, type_, *members)


def exact(value):
    """An integer value as Python ints (an object array), to be summed without overflow."""
    return np.asarray(value).astype(object)


@_implements("federated_broadcast")  # of an all-equal server value: the value itself
@_implements("federated_value_at_server")
@_implements("federated_value_at_clients")
def _value(interp, fn_type, value):
    return value


@_implements("federated_eval_at_server")
def _eval_server(interp, fn_type, fn):
    return fn(None)


@_implements("federated_eval_at_clients")
def _eval_clients(interp, fn_type, fn):
    count = interp.count("federated_eval at CLIENTS")
    return interp.per_client(lambda _: fn(None), range(count))


@_implements("federated_map")
def _map(interp, fn_type, argument):
    fn, value = argument
    return interp.per_client(fn, interp.members(value, fn_type.parameter[1]))


@_implements("federated_apply")
def _apply(interp, fn_type, argument):
    fn, value = argument
    if not fn_type.parameter[1].all_equal:  # `{T}@SERVER`: a list of the server's members
        return [fn(member) for member in value]
    return fn(value)


@_implements("federated_sum")
def _federated_sum(interp, fn_type, value):
    members = interp.members(value, fn_type.parameter)
    return _sum(fn_type.result.member, members)


@_implements("federated_mean")
def _mean(interp, fn_type, value):
    members = interp.members(value, fn_type.parameter)
    count = len(members)
    return structure.map_structure(
        lambda t, *xs: _cast(t, _accumulate(t, xs) / count)
        if xs else _cast(t, np.full(t.shape, np.nan)), fn_type.result.member, *members)


def _accumulate(type_, members, weights=None):
    """The sum of the members (each times its weight, if given), in the wide dtype, one
    member at a time (so that no stacked copy of every client's value is made)."""
    same_shapes("the mean", *members)
    total = np.zeros(np.shape(members[0]), _wide(type_))
    for index, member in enumerate(members):
        member = np.asarray(member, _wide(type_))
        total += member if weights is None else member * weights[index]
    return total


def _wide(type_):
    """The accumulation dtype for means: complex128 for complex tensors, else float64."""
    return np.complex128 if type_.dtype.kind == "c" else np.float64


@_implements("federated_weighted_mean")
def _weighted_mean(interp, fn_type, argument):
    value_type, weight_type = fn_type.parameter
    members = interp.members(argument[0], value_type)
    weights = np.asarray(interp.members(argument[1], weight_type), dtype=np.float64)
    # A member of weight zero is left out, so a client with nothing to contribute (whose
    # value may be NaN, as 0/0 metrics are) does not turn the mean into NaN.
    members = [m for m, w in zip(members, weights) if w != 0]
    weights = weights[weights != 0]
    total = weights.sum()

    def mean(t, *xs):
        if not xs:
            return _cast(t, np.full(t.shape, np.nan))
        weighted = _accumulate(t, xs, weights)
        with np.errstate(invalid="ignore", divide="ignore"):
            return _cast(t, weighted / total)
    return structure.map_structure(mean, fn_type.result.member, *members)


def _extremum(reducer, name):
    def implementation(interp, fn_type, value):
        members = interp.members(value, fn_type.parameter)
        if not members:
            raise ExecutionError(f"{name} of zero clients is undefined.")
        def reduce(t, *xs):
            same_shapes(name, *xs)
            return _cast(t, functools.reduce(reducer, xs))
        return structure.map_structure(reduce, fn_type.result.member, *members)
    return implementation


_implements("federated_min")(_extremum(np.minimum, "federated_min"))
_implements("federated_max")(_extremum(np.maximum, "federated_max"))


def check_merge_identity(zero, merge):
    """`federated_aggregate`'s contract: `zero` is an identity of `merge`, so that the result
    does not depend on how clients are split into partial accumulators (executors split
    them differently). `merge(zero, zero) == zero` is checked on every executor."""
    merged = merge(Struct([(None, zero), (None, zero)]))
    pairs = list(zip(structure.leaves(merged), structure.leaves(zero)))
    if len(structure.leaves(merged)) != len(structure.leaves(zero)) or not all(
            _same_value(a, b) for a, b in pairs):
        raise ExecutionError(f"federated_aggregate: zero must be an identity of merge "
                             f"(merge(zero, zero) == zero), found merge(zero, zero) = "
                             f"{_shown(merged)} for zero = {_shown(zero)}.")


def _same_value(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "fc" and b.dtype.kind in "fc":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


def _shown(value):
    leaves = [np.asarray(leaf).tolist() for leaf in structure.leaves(value)]
    return leaves[0] if len(leaves) == 1 else leaves


@_implements("federated_aggregate")
def _aggregate(interp, fn_type, argument):
    value, zero, accumulate, merge, report = argument
    check_merge_identity(zero, merge)
    members = interp.members(value, fn_type.parameter[0])

    def fold(part):
        accumulator = zero
        for member in part:
            accumulator = accumulate(Struct([(None, accumulator), (None, member)]))
        return accumulator

    # Two partial accumulators, merged: exercises `merge` as a real hierarchy would.
    half = len(members) // 2
    if half:
        merged = merge(Struct([(None, fold(members[:half])), (None, fold(members[half:]))]))
    else:
        merged = fold(members)
    return report(merged)


def _secure_sum(interp, fn_type, argument, bounds_of, modulus_of, what):
    value, bound = argument
    value_type = fn_type.parameter[0]
    members = interp.members(value, value_type)
    leaf_types = structure.leaf_types(value_type.member)
    bounds = bounds_of(bound, fn_type.parameter[1], len(leaf_types))
    sums = []
    for position, (leaf_type, limit) in enumerate(zip(leaf_types, bounds)):
        modulus = modulus_of(limit, len(members))
        total = 0
        for client, member in enumerate(members):
            # Python ints: exact, whatever the width of the dtype.
            leaf = np.array(np.asarray(structure.leaves(member)[position]).tolist(), dtype=object)
            if np.any(leaf < 0) or np.any(leaf > limit):
                raise ExecutionError(f"{what}: the value {leaf.tolist()} of client {client} is "
                                     f"outside [0, {limit}].")
            total = (total + leaf) % modulus
        if not members:
            total = np.zeros(leaf_type.shape or (), dtype=object)
        sums.append(exact_sum(leaf_type, total, what))
    return structure.rebuild(value_type.member, sums)


def exact_sum(type_, total, what):
    """An integer sum's exact total (Python ints) as a value of `type_`; a total the dtype
    cannot hold is an error, not a wrapped-around number."""
    total = np.asarray(total, dtype=object)
    info = np.iinfo(type_.dtype)
    if total.size and (total.max() > info.max or total.min() < info.min):
        shown = total.tolist() if total.size <= 8 else \
            f"with elements from {total.min()} to {total.max()}"
        raise ExecutionError(f"{what}: the sum {shown} does not fit {type_.dtype.name} (the "
                             f"dtype of the clients' values); declare the values with a "
                             f"wider dtype.")
    return _cast(type_, total.astype(type_.dtype))


def _bounds(bound, bound_type, count):
    leaves = [int(b) for b in structure.leaves(bound)]
    return leaves * count if isinstance(bound_type, core.TensorType) else leaves


@_implements("federated_secure_sum")
def _secure_sum_max_input(interp, fn_type, argument):
    return _secure_sum(interp, fn_type, argument, _bounds,
                       lambda limit, n: secure_modulus(limit, n, False), "federated_secure_sum")


def secure_modulus(limit, num_clients, bitwidth):
    """The range a secure-aggregation protocol sums in: `num_clients * max_input + 1` for
    `federated_secure_sum`, `2**(bitwidth + ceil(log2(num_clients)))` for the bitwidth form;
    both hold every sum of valid values."""
    if not bitwidth:
        return num_clients * limit + 1
    bits = (limit + 1).bit_length() - 1
    return 2 ** (bits + math.ceil(math.log2(max(num_clients, 1))))


@_implements("federated_secure_sum_bitwidth")
def _secure_sum_bitwidth(interp, fn_type, argument):
    def bounds(bound, bound_type, count):
        return [2 ** b - 1 for b in _bounds(bound, bound_type, count)]
    return _secure_sum(interp, fn_type, argument, bounds,
                       lambda limit, n: secure_modulus(limit, n, True),
                       "federated_secure_sum_bitwidth")


def _zip(interp, fn_type, argument, clients):
    if not clients:
        return _unplace(argument, fn_type.parameter, None)
    counts = [len(m) for m in _client_lists(argument, fn_type.parameter)]
    count = counts[0] if counts else interp.count("federated_zip of all-equal values")
    return [_unplace(argument, fn_type.parameter, i) for i in range(count)]


def _client_lists(value, type_):
    if isinstance(type_, core.FederatedType):
        return [] if type_.all_equal else [value]
    return [m for v, t in zip(value, type_) for m in _client_lists(v, t)]


def _unplace(value, type_, client):
    if isinstance(type_, core.FederatedType):
        return value if client is None or type_.all_equal else value[client]
    return Struct([(name, _unplace(v, t, client))
                   for (name, t), v in zip(type_.items(), value)])


_implements("federated_zip_at_server")(lambda i, t, a: _zip(i, t, a, clients=False))
_implements("federated_zip_at_clients")(lambda i, t, a: _zip(i, t, a, clients=True))


def iterate(sequence, element_type):
    """The elements of a runtime sequence (a list, or a dataset converted element-wise)."""
    if isinstance(sequence, (list, tuple)):
        return list(sequence)
    from fcore.execution.values import to_runtime
    try:
        return [to_runtime(element, element_type) for element in sequence]
    except Exception as e:  # noqa: BLE001 - a failed dataset check surfaces as TF's error
        checked = dataset_check_error(e)
        if checked is not None:
            raise checked from e
        raise


@_implements("sequence_map")
def _sequence_map(interp, fn_type, argument):
    fn, sequence = argument
    return [fn(e) for e in iterate(sequence, fn_type.parameter[1].element)]


@_implements("sequence_reduce")
def _sequence_reduce(interp, fn_type, argument):
    sequence, zero, op = argument
    accumulator = zero
    for element in iterate(sequence, fn_type.parameter[0].element):
        accumulator = op(Struct([(None, accumulator), (None, element)]))
    return accumulator


@_implements("sequence_sum")
def _sequence_sum(interp, fn_type, sequence):
    return _sum(fn_type.result, iterate(sequence, fn_type.parameter.element), "sequence_sum")
