"""Printing types: the compact one-line notation of TFF, and an indented formatted view.

Compact forms: `int32`, `float32[?,784]`, `float32[...]` (unknown rank), `<a=int32,float32>`,
`int32*`, `(int32 -> float32)`, `( -> int32)`, `{int32}@CLIENTS`, `int32@SERVER`,
`placement`, `T`.
"""

from __future__ import annotations

from fcore.types import core, dtypes


def compact(type_) -> str:
    """The one-line notation of `type_`; `parse_type` reads it back."""
    if isinstance(type_, core.TensorType):
        return dtypes.dtype_name(type_.dtype) + _shape(type_.shape)
    if isinstance(type_, core.StructType):
        return "<" + ",".join(_element(name, compact(t)) for name, t in type_.items()) + ">"
    if isinstance(type_, core.SequenceType):
        return compact(type_.element) + "*"
    if isinstance(type_, core.FunctionType):
        parameter = "" if type_.parameter is None else compact(type_.parameter)
        return f"({parameter} -> {compact(type_.result)})"
    if isinstance(type_, core.FederatedType):
        return _federated(compact(type_.member), type_)
    if isinstance(type_, core.PlacementType):
        return "placement"
    if isinstance(type_, core.AbstractType):
        return type_.label
    raise TypeError(f"Not an fcore type: {type_!r}")


def formatted(type_, width: int = 80) -> str:
    """`type_` over several indented lines; parts that fit in `width` stay on one line."""
    return "\n".join(_lines(type_, width, 0))


def _shape(shape) -> str:
    if shape is None:
        return "[...]"
    if not shape:
        return ""
    return "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"


def _element(name, text):
    return text if name is None else f"{name}={text}"


def _federated(member_text, type_):
    if type_.all_equal:
        return f"{member_text}@{type_.placement.name}"
    return f"{{{member_text}}}@{type_.placement.name}"


def _lines(type_, width, indent):
    """The lines of `type_`, the first one without indentation, the rest indented."""
    text = compact(type_)
    if indent + len(text) <= width or isinstance(type_, (core.TensorType, core.AbstractType,
                                                         core.PlacementType)):
        return [text]
    pad = " " * (indent + 2)
    if isinstance(type_, core.StructType):
        lines = ["<"]
        items = type_.items()
        for i, (name, element) in enumerate(items):
            sub = _lines(element, width, indent + 2)
            sub[0] = pad + _element(name, sub[0])
            if i < len(items) - 1:
                sub[-1] += ","
            lines.extend(sub)
        return lines + [" " * indent + ">"]
    if isinstance(type_, core.SequenceType):
        sub = _lines(type_.element, width, indent)
        sub[-1] += "*"
        return sub
    if isinstance(type_, core.FederatedType):
        sub = _lines(type_.member, width, indent)
        if not type_.all_equal:
            sub[0] = "{" + sub[0]
            sub[-1] += "}"
        sub[-1] += "@" + type_.placement.name
        return sub
    if isinstance(type_, core.FunctionType):
        lines = ["("]
        if type_.parameter is not None:
            sub = _lines(type_.parameter, width, indent + 2)
            lines.append(pad + sub[0])
            lines.extend(sub[1:])
        result = _lines(type_.result, width, indent + 2)
        lines.append(pad + "-> " + result[0])
        lines.extend(result[1:])
        return lines + [" " * indent + ")"]
    raise TypeError(f"Not an fcore type: {type_!r}")
