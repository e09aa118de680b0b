"""Structures: flattening, rebuilding and mapping over structs and their types, and the
registry of Python containers that stand for structs.

The one home of these walks (in the spirit of JAX's pytrees): runtime struct values are
`fcore.Struct`s; their types are `StructType`s; leaves are whatever is not a struct. Python
containers (dicts, OrderedDicts, namedtuples, attrs classes, dataclasses, lists, tuples) are
read with `python_items` and built with `pack` (defined with `Struct` in `fcore.struct`, the
lowest layer, so that type conversion can use them too).
"""

from __future__ import annotations

from fcore.struct import (Struct, container_fields, is_namedtuple, pack,  # noqa: F401
                          python_items)
from fcore.types import core


# Types --------------------------------------------------------------------------------------

def type_leaves(type_) -> list:
    """The non-struct types of `type_`, in order (`type_` itself if it is not a struct)."""
    if isinstance(type_, core.StructType):
        return [leaf for element in type_ for leaf in type_leaves(element)]
    return [type_]


def leaf_types(type_) -> list:
    """The tensor types of a value's leaves, placements removed: the leaves of the member
    of a federated type (`{<a=int32,b=float32>}@CLIENTS` gives int32, float32)."""
    if isinstance(type_, core.FederatedType):
        return leaf_types(type_.member)
    if isinstance(type_, core.StructType):
        return [leaf for t in type_ for leaf in leaf_types(t)]
    return [type_]


def contains(type_, predicate) -> bool:
    """Whether `type_` or an element of it (through structs) satisfies `predicate`."""
    if predicate(type_):
        return True
    return isinstance(type_, core.StructType) and any(contains(t, predicate) for t in type_)


def mentions(type_, predicate) -> bool:
    """Whether `type_` or any type inside it (through structs, federated members, sequence
    elements, function parameters and results) satisfies `predicate`."""
    if predicate(type_):
        return True
    if isinstance(type_, core.FunctionType):
        parts = [t for t in (type_.parameter, type_.result) if t is not None]
    elif isinstance(type_, core.FederatedType):
        parts = [type_.member]
    elif isinstance(type_, core.SequenceType):
        parts = [type_.element]
    elif isinstance(type_, core.StructType):
        parts = list(type_)
    else:
        parts = []
    return any(mentions(t, predicate) for t in parts)


def is_federated(type_) -> bool:
    return isinstance(type_, core.FederatedType)


def is_client_list(type_) -> bool:
    """A `{T}@CLIENTS` type: its values are lists with one member per client."""
    return isinstance(type_, core.FederatedType) and type_.placement.name == "CLIENTS" and \
        not type_.all_equal


# Runtime values -----------------------------------------------------------------------------

def leaves(value) -> list:
    """The leaves of a runtime value: the elements of nested `Struct`s, in order."""
    if isinstance(value, Struct):
        return [leaf for v in value for leaf in leaves(v)]
    return [value]


def flatten(type_, value) -> list:
    """The leaves of `value` at the leaves of `type_` (a value's non-struct parts, whatever
    they are: a list standing for a sequence stays whole)."""
    if isinstance(type_, core.StructType):
        return [leaf for element_type, element in zip(type_, value)
                for leaf in flatten(element_type, element)]
    return [value]


def rebuild(type_, flat) -> object:
    """The `Struct` of `type_` (placements removed, as `leaf_types`) whose leaves are taken
    from the front of the list `flat`."""
    if isinstance(type_, core.FederatedType):
        return rebuild(type_.member, flat)
    if isinstance(type_, core.StructType):
        return Struct([(name, rebuild(t, flat)) for name, t in type_.items()])
    return flat.pop(0)


def map_structure(fn, type_, *values):
    """`fn(leaf_type, *leaves)` for each leaf of values of struct type `type_`, as a
    `Struct` of `type_`."""
    if isinstance(type_, core.StructType):
        return Struct([(name, map_structure(fn, t, *[v[i] for v in values]))
                       for i, (name, t) in enumerate(type_.items())])
    return fn(type_, *values)
