"""Assignability of types: may a value of one type be used where another is expected?

The rules: tensors need the same dtype and a compatible shape (`?` and unknown rank accept
any size); structs need the same length, and a named element of the value needs the same
name in the expected type (an unnamed one fits any name, as in TFF); sequences compare
elements; functions are contravariant in the parameter and covariant in the result;
federated types need the same placement, and an all-equal expected type needs an all-equal
value (the converse is fine: `T@CLIENTS` is assignable to `{T}@CLIENTS`).
"""

from __future__ import annotations

from fcore.types import core
from fcore.types.errors import TypeMismatchError


def first_difference(target, source, path=""):
    """`None` if `source` is assignable to `target`, else `(path, reason)` for the first
    place where it is not."""
    if target is source:
        return None
    if target is None or source is None:
        return (path, "no parameter on one side") if target is not source else None
    if isinstance(target, core.AbstractType):
        return None if target == source else (path, f"{source} is not the type variable "
                                                    f"{target.label}")
    if type(target) is not type(source):
        return path, f"expected {_kind(target)}, found {_kind(source)}"
    if isinstance(target, core.TensorType):
        if target.dtype != source.dtype:
            return path, f"dtype {core.dtypes.dtype_name(source.dtype)} is not " \
                         f"{core.dtypes.dtype_name(target.dtype)}"
        if not _shape_accepts(target.shape, source.shape):
            return path, f"shape {_shape_text(source)} does not fit {_shape_text(target)}"
        return None
    if isinstance(target, core.StructType):
        if len(target) != len(source):
            return path, f"expected {len(target)} elements, found {len(source)}"
        for index, ((t_name, t_el), (s_name, s_el)) in enumerate(
                zip(target.items(), source.items())):
            where = f"{path}.{t_name}" if t_name else f"{path}[{index}]"
            if s_name is not None and t_name != s_name:  # an unnamed source fits any name
                expected = f"name {t_name!r}" if t_name else "no name"
                return f"{path}[{index}]", f"expected {expected}, found name {s_name!r}"
            diff = first_difference(t_el, s_el, where)
            if diff is not None:
                return diff
        return None
    if isinstance(target, core.SequenceType):
        return first_difference(target.element, source.element, path + "*")
    if isinstance(target, core.FunctionType):
        diff = first_difference(source.parameter, target.parameter, path + "(parameter)")
        return diff or first_difference(target.result, source.result, path + "(result)")
    if isinstance(target, core.FederatedType):
        if target.placement is not source.placement:
            return path, (f"placed at {source.placement.name}, expected "
                          f"{target.placement.name}")
        if target.all_equal and not source.all_equal:
            return path, "expected an all-equal value, found one value per member"
        return first_difference(target.member, source.member, path + "@")
    return None  # PlacementType


def check_assignable(target, source, what="value"):
    """Raises `TypeMismatchError` (expected, found, path to the first difference)."""
    diff = first_difference(target, source)
    if diff is not None:
        raise mismatch(target, source, diff, what)


def mismatch(target, source, diff, what="value"):
    path, reason = diff
    where = f" at {path}" if path else ""
    message = f"Expected {what} of type {target}, found {source}; first difference{where}: " \
              f"{reason}."
    if len(str(target)) > 60:
        message += ("\nExpected:\n" + _indent(target.formatted()) +
                    "\nFound:\n" + _indent(source.formatted()))
    return TypeMismatchError(message, expected=target, found=source, path=path)


def _indent(text):
    return "\n".join("  " + line for line in text.splitlines())


def _kind(type_):
    name = {core.TensorType: "a tensor", core.StructType: "a struct",
            core.SequenceType: "a sequence", core.FunctionType: "a function",
            core.FederatedType: "a federated value", core.PlacementType: "a placement",
            core.AbstractType: "a type variable"}[type(type_)]
    return f"{name} ({type_})"


def _shape_accepts(target, source):
    if target is None:
        return True
    if source is None or len(target) != len(source):
        return False
    return all(t is None or t == s for t, s in zip(target, source))


def _shape_text(type_):
    from fcore.types.printing import _shape
    return _shape(type_.shape) or "[] (scalar)"
