"""The text form of IR nodes, which `fcore.parse_computation` reads back.

    (x:{int32}@CLIENTS -> federated_sum(x))
    (s:float32@SERVER -> (let _var1=federated_broadcast(s) in federated_map(<@add,_var1>)))

TF leaves print as `@name`; distinct leaves that share a name get `_1`, `_2`, ... suffixes,
chosen by the printing context, so printing is deterministic. `leaves(node)` gives the
name -> computation map for parsing the text back.
"""

from __future__ import annotations

import json
import re

import numpy as np

from fcore.ir import nodes
from fcore.types import core

_DEFAULT_LITERAL_DTYPES = {"int32", "float32", "bool", "str"}
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_/]*\Z")
_KEYWORDS = {"let", "in", "true", "false", "inf", "nan", "SERVER", "CLIENTS"}
_INTRINSIC_LIKE = re.compile(r"(federated|sequence)_")  # the intrinsics' namespace


def name_text(name: str) -> str:
    """`name` as the grammar reads it back: plain, or between backquotes where it is a
    keyword, a literal, a placement, not a plain identifier, or in the intrinsics' namespace
    (`federated_...`, `sequence_...`), where a plain name called is the intrinsic."""
    if _PLAIN_NAME.match(name) and name not in _KEYWORDS and \
            not _INTRINSIC_LIKE.match(name):
        return name
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def to_text(node: nodes.Node, formatted: bool = False) -> str:
    """The text of `node`: one line, or with `formatted=True` each block binding on its own
    indented line."""
    names = _leaf_names(node)
    return _Printer(names, formatted).text(node, 0)


def leaves(node: nodes.Node) -> dict:
    """`{printed name: computation}` for every TF leaf in `node`, as `to_text` names them."""
    return {name: leaf.computation for leaf, name in _leaf_names(node).items()}


def _leaf_names(node):
    names, used, stack = {}, set(), [node]
    while stack:  # pre-order, so names are assigned in reading order
        current = stack.pop()
        if isinstance(current, nodes.TFLeaf) and current not in names:
            base = _leaf_base(current.name)
            name, suffix = base, 0
            while name in used:
                suffix += 1
                name = f"{base}_{suffix}"
            names[current] = name
            used.add(name)
        stack.extend(reversed(current.children()))
    return names


def _leaf_base(name):
    """A leaf's printed name: its own, reduced to letters, digits and `_` (printed leaf
    names also name files when a computation is saved)."""
    base = re.sub(r"[^A-Za-z0-9_]", "_", name.encode("ascii", "replace").decode())
    return base if base and not base[0].isdigit() else f"leaf_{base}"


class _Printer:
    """Prints without recursion: each node becomes a list of pieces, strings and
    `(child, indent)` pairs, expanded from an explicit stack, so any depth prints."""

    def __init__(self, leaf_names, formatted):
        self.leaf_names = leaf_names
        self.formatted = formatted

    def text(self, node, indent):
        out, stack = [], [(node, indent)]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                out.append(item)
            else:
                current, level = item
                pieces = getattr(self, "_" + type(current).__name__.lower())(current, level)
                stack.extend(reversed(pieces))
        return "".join(out)

    def _reference(self, node, indent):
        return [name_text(node.name)]

    def _selection(self, node, indent):
        suffix = f".{name_text(node.name)}" if node.name is not None else f"[{node.index}]"
        return [(node.source, indent), suffix]

    def _struct(self, node, indent):
        pieces = ["<"]
        for i, (name, value) in enumerate(node.elements):
            if i:
                pieces.append(",")
            if name is not None:
                pieces.append(f"{name_text(name)}=")
            pieces.append((value, indent))
        pieces.append(">")
        return pieces

    def _call(self, node, indent):
        pieces = [(node.function, indent), "("]
        if node.argument is not None:
            pieces.append((node.argument, indent))
        pieces.append(")")
        return pieces

    def _lambda(self, node, indent):
        parameter = "" if node.parameter_name is None else \
            f"{name_text(node.parameter_name)}:{node.parameter_type}"
        return [f"({parameter} -> ", (node.body, indent), ")"]

    def _block(self, node, indent):
        if not self.formatted:
            pieces = ["(let "]
            for i, (name, value) in enumerate(node.locals):
                pieces.append(f"{',' if i else ''}{name_text(name)}=")
                pieces.append((value, indent))
            pieces += [" in ", (node.result, indent), ")"]
            return pieces
        pad = " " * (indent + 2)
        pieces = ["(let\n"]
        for i, (name, value) in enumerate(node.locals):
            pieces.append(f"{',' + chr(10) if i else ''}{pad}{name_text(name)}=")
            pieces.append((value, indent + 2))
        pieces += [f"\n{' ' * indent}in ", (node.result, indent), ")"]
        return pieces

    def _intrinsic(self, node, indent):
        return [node.uri]

    def _literal(self, node, indent):
        return [literal_text(node)]

    def _placement(self, node, indent):
        return [node.placement.name]

    def _tfleaf(self, node, indent):
        return ["@" + self.leaf_names[node]]


def literal_text(node: nodes.Literal) -> str:
    type_ = node.type_signature
    name = core.dtypes.dtype_name(type_.dtype)
    if name == "str":
        return json.dumps(node.value)
    body = _value_text(node.value.tolist(), name)
    if type_.shape == () and name in _DEFAULT_LITERAL_DTYPES:
        return body
    return f"{body}:{type_}"


def _value_text(value, dtype_name):
    if isinstance(value, list):
        return "[" + ",".join(_value_text(v, dtype_name) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, complex):
        part = "float32" if dtype_name == "complex64" else "float64"
        imag = _float_text(value.imag, part)
        sign = "" if imag.startswith("-") else "+"
        return f"{_float_text(value.real, part)}{sign}{imag}j"
    if isinstance(value, float):
        return _float_text(value, dtype_name)
    return str(value)


def _float_text(value, dtype_name):
    """The shortest text that reads back as the same value of `dtype_name`; `inf`, `-inf`
    and `nan` for non-finite values."""
    if not np.isfinite(value):
        return "nan" if np.isnan(value) else ("inf" if value > 0 else "-inf")
    text = str(np.dtype(dtype_name).type(value)) if dtype_name.startswith("float") else \
        repr(value)
    return text if any(c in text for c in ".en") else text + ".0"
