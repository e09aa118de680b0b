"""`parse_computation`: the text form of computations (grammar/computations.lark) to IR.

Parsing runs in two steps: Lark builds a tree (iteratively) and the type subtrees become
fcore types; then a builder walks the tree with the names in scope, building type-checked
IR nodes. Every failure, syntactic or a type error, reports line, column and a caret."""

from __future__ import annotations

import json
import math
import re

import numpy as np

from fcore.intrinsics import definitions
from fcore.ir import nodes
from fcore.syntax import errors, grammars
from fcore.syntax.types import TypeBuilder, _transformer_base
from fcore.types import core, placements
from fcore.types.errors import TypeMismatchError, TypeParseError


class ComputationTypeError(TypeParseError, TypeError):
    """Text that parses but does not type check (a `ValueError` and a `TypeError`)."""


def _types_transformer():
    import lark
    builder = TypeBuilder()

    class ImportedTypes(_transformer_base()):
        def __default__(self, data, children, meta):
            if data.startswith("types__"):
                try:
                    return getattr(builder, data[len("types__"):])(children)
                except (TypeError, ValueError) as e:  # Lark wraps only named callbacks
                    raise lark.exceptions.VisitError(data, lark.Tree(data, children, meta),
                                                     e) from e
            return lark.Tree(data, children, meta)
    return ImportedTypes()


def parse_computation(text: str, env=None, name="parsed"):
    """Parses the text form of a computation and returns a callable `fcore.Computation`.

    `env` maps the names of `@name` leaves to computations (`@fcore.tf_computation`s, or
    federated computations, whose body is then used in place). For a computation `c`,
    `parse_computation(str(c), c.leaves())` equals `c`.

    Expressions may nest `errors.MAX_EXPRESSION_DEPTH` levels deep (brackets, types
    included, `errors.MAX_DEPTH`), and no expression's type deeper than `errors.MAX_DEPTH`:
    so everything that walks the IR recursively (printing, equality) handles what parses."""
    with grammars.gc_paused():
        return _parse_computation(text, env, name)


def _parse_computation(text, env, name):
    from fcore.syntax.types import parse_tree
    from fcore.computation import Computation
    tree = parse_tree("computations.lark", text, "computation")
    builder = _Builder(text, env or {})
    try:
        node = builder.build(tree.children[0], 1)
    except RecursionError:  # not expected within the depth limits; never a crash
        raise errors.error(text, 1, 1, "the computation is nested too deeply.",
                           "computation") from None
    try:
        return Computation(node, name)
    except TypeError as e:
        raise _at(text, tree.children[0], str(e), ComputationTypeError) from None


def _at(text, tree, message, cls=TypeParseError):
    meta = getattr(tree, "meta", None)
    line = getattr(meta, "line", None) or getattr(tree, "line", None) or 1
    column = getattr(meta, "column", None) or getattr(tree, "column", None) or 1
    error = errors.error(text, line, column, message.rstrip("."), "computation")
    return cls(str(error), line=line, column=column, text=text)


_UNBOUND = object()


class _Builder:
    """Builds IR from the parse tree top-down. `scope` (name -> type) is one dict, updated
    as binders come into scope and restored as they leave it, so a long let-chain builds in
    linear time; `depth` bounds the recursion (see `errors.MAX_EXPRESSION_DEPTH`)."""

    def __init__(self, text, env):
        self.text = text
        self.env = env
        self.scope = {}
        self.type_depths = {}  # id(type) -> (nesting depth, type), for the types built
        self.types = _types_transformer()
        self.literals = {}  # (kind, text, type) -> the Literal node already built

    def build(self, tree, depth):
        if depth > errors.MAX_EXPRESSION_DEPTH:
            raise _at(self.text, tree, f"nesting is deeper than "
                      f"{errors.MAX_EXPRESSION_DEPTH} levels of expressions")
        try:
            node = getattr(self, "_" + tree.data)(tree, depth)
        except TypeParseError:
            raise
        except (TypeMismatchError, TypeError, AttributeError, IndexError, OverflowError) as e:
            raise _at(self.text, tree, str(e), ComputationTypeError) from None
        except (ValueError, NameError, KeyError) as e:
            raise _at(self.text, tree, str(e).strip("'\""), TypeParseError) from None
        if self._type_depth(node.type_signature) > errors.MAX_DEPTH:
            raise _at(self.text, tree, f"the type of this expression is nested deeper than "
                      f"{errors.MAX_DEPTH} levels", ComputationTypeError)
        return node

    def _type(self, tree):
        """The fcore type of a type subtree (None when there is none)."""
        if tree is None:
            return None
        from fcore.syntax.types import transform
        return transform(tree, self.text, "computation", self.types)

    def _type_depth(self, type_):
        depths = self.type_depths
        known = depths.get(id(type_))
        if known is not None:
            return known[0]
        stack = [(type_, False)]
        while stack:  # post-order without recursion; types are shared, so mostly cached
            current, ready = stack.pop()
            if id(current) in depths:
                continue
            children = [c for c in current.children() if c is not None]
            if ready:
                depth = 1 + max((depths[id(c)][0] for c in children), default=0)
                depths[id(current)] = (depth, current)
            else:
                stack.append((current, True))
                stack.extend((c, False) for c in children if id(c) not in depths)
        return depths[id(type_)][0]

    def _bind(self, name, type_):
        """Brings `name` into scope; returns what to give `_unbind` to take it out again."""
        previous = self.scope.get(name, _UNBOUND)
        self.scope[name] = type_
        return name, previous

    def _unbind(self, saved):
        for name, previous in reversed(saved):
            if previous is _UNBOUND:
                del self.scope[name]
            else:
                self.scope[name] = previous

    def _name(self, tree, depth):
        name, quoted = ident(tree.children[0]), _quoted(tree.children[0])
        scope = self.scope
        if name in scope:
            return nodes.Reference(name, scope[name])
        if name in ("SERVER", "CLIENTS") and not quoted:
            return nodes.Placement(placements.from_name(name))
        if name in definitions.INTRINSICS and not quoted:
            raise TypeError(f"the intrinsic {name} must be called with its argument here")
        bound = ", ".join(sorted(scope)) or "none"
        raise NameError(f"the name {name!r} is not bound here (names in scope: {bound})")

    def _call(self, tree, depth):
        function, argument = tree.children
        if function.data == "name" and not _quoted(function.children[0]) and \
                str(function.children[0]) in definitions.INTRINSICS:
            uri = str(function.children[0])
            if argument is None:
                raise TypeError(f"{uri} takes an argument")
            argument = self.build(argument, depth + 1)
            fn_type = definitions.lookup(uri).function_type(argument.type_signature)
            return nodes.Call(nodes.Intrinsic(uri, fn_type), argument)
        function = self.build(function, depth + 1)
        return nodes.Call(function,
                          None if argument is None else self.build(argument, depth + 1))

    def _select_name(self, tree, depth):
        return nodes.Selection(self.build(tree.children[0], depth + 1),
                               name=ident(tree.children[1]))

    def _select_index(self, tree, depth):
        return nodes.Selection(self.build(tree.children[0], depth + 1),
                               index=_int(tree.children[1]))

    def _lambda(self, tree, depth):
        name, type_, body = tree.children
        type_ = self._type(type_)
        if name is None:
            return nodes.Lambda(None, type_, self.build(body, depth + 1))
        name = ident(name)
        saved = [self._bind(name, type_)]
        body = self.build(body, depth + 1)
        self._unbind(saved)
        return nodes.Lambda(name, type_, body)

    def _block(self, tree, depth):
        *bindings, result = tree.children
        locals_, saved = [], []
        for binding in bindings:
            name, value = binding.children
            node = self.build(value, depth + 1)
            saved.append(self._bind(ident(name), node.type_signature))
            locals_.append((ident(name), node))
        result = self.build(result, depth + 1)
        self._unbind(saved)
        return nodes.Block(locals_, result)

    def _struct(self, tree, depth):
        if tree.children == [None]:
            return nodes.Struct([])
        elements = []
        for element in tree.children:
            if element.data == "named_element":
                elements.append((ident(element.children[0]),
                                 self.build(element.children[1], depth + 1)))
            else:
                elements.append((None, self.build(element.children[0], depth + 1)))
        return nodes.Struct(elements)

    def _leaf(self, tree, depth):
        name = ident(tree.children[0])
        if name not in self.env:
            known = ", ".join(sorted(self.env)) or "none"
            raise NameError(f"@{name} is not in env (env names: {known}); pass "
                            f"env={{'{name}': computation}}")
        return leaf_node(self.env[name], name)

    def _literal(self, tree, depth):
        value, type_ = tree.children
        type_ = self._type(type_)
        key = None
        if value.data != "array":  # nodes are immutable: equal scalar literals are shared
            key = (value.data, str(value.children[0]) if value.children else "", type_)
            known = self.literals.get(key)
            if known is not None:
                return known
        value = self._value(value, type_, top=True)
        try:
            node = nodes.Literal(value, type_)
            if key is not None:
                self.literals[key] = node
            return node
        except (ValueError, OverflowError):  # NumPy cannot hold it (ragged, mixed, ...)
            raise TypeError(f"Literal: {_clip(repr(value))} is not a value of type "
                            f"{type_ if type_ is not None else 'any tensor type'}") from None

    def _value(self, tree, type_, top=False):
        """The Python value of a literal's value subtree. Numbers are checked against the
        literal's type (`None`: the default one), so that none overflows in NumPy: one that
        does not fit is reported at its own place."""
        kind = tree.data
        if kind == "number":
            return self._number(tree.children[0], type_, top)
        if kind == "complex_number":
            token = tree.children[0]
            value = complex(str(token))
            if not (math.isfinite(value.real) and math.isfinite(value.imag)) and \
                    "inf" not in token and "nan" not in token:
                raise self._too_large(token, type_, top, "complex128")
            return value
        if kind == "string":
            return json.loads(str(tree.children[0]))
        if kind in ("true", "false"):
            return kind == "true"
        if tree.children == [None]:
            return []
        return [self._value(child, type_) for child in tree.children]

    def _number(self, token, type_, top):
        text = str(token)
        dtype = getattr(type_, "dtype", None)
        kind = getattr(dtype, "kind", None)
        if any(c in text for c in ".eEna"):
            value = float(text)
            if math.isinf(value) and "inf" not in text:
                raise self._too_large(token, type_, top, "float32" if top else "float64")
            return value
        digits = len(text.lstrip("-"))
        if kind in ("f", "c"):  # an integer written for a float: read it as one
            try:
                if digits > 400:
                    raise OverflowError
                return float(int(text))
            except OverflowError:
                raise self._too_large(token, type_, top) from None
        if kind in ("i", "u"):
            info = np.iinfo(dtype)
        elif top and type_ is None:
            info = np.iinfo(np.int32)
        else:  # a bool or str literal (the Literal reports it), or in an untyped array
            info = np.iinfo(np.int64)
        if digits > 20 or not info.min <= int(text) <= info.max:
            raise self._too_large(token, type_, top, info.dtype.name)
        return int(text)

    def _too_large(self, token, type_, top, default=None):
        """The error for a number that its literal's type cannot hold."""
        if type_ is None:
            shown = default
        elif top:
            shown = type_
        else:
            shown = core.dtypes.dtype_name(type_.dtype)
        return _at(self.text, token, f"Literal: {_clip(str(token))} is not a value of type "
                   f"{shown}", ComputationTypeError)


def _clip(text, limit=40):
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _int(token):
    text = str(token)
    if len(text) > 20:
        raise IndexError(f"Index {_clip(text)} is out of range.")
    return int(text)


def ident(token) -> str:
    """The name a name token stands for: a plain identifier, or a quoted one unescaped."""
    if not _quoted(token):
        return str(token)
    return re.sub(r"\\(.)", r"\1", str(token)[1:-1])


def _quoted(token):
    return getattr(token, "type", None) == "QUOTED_NAME"


def leaf_node(value, name):
    """The IR node for an env entry: a computation's own IR, or a TF function's leaf."""
    from fcore.computation import Computation
    if isinstance(value, Computation):
        return value.ir
    if hasattr(value, "run") and hasattr(value, "type_signature"):  # a TF leaf
        return nodes.TFLeaf(value.name, value, value.type_signature)
    if isinstance(value, nodes.Node):
        return value
    raise TypeError(f"env[{name!r}] must be a computation, found {type(value).__name__}")
