"""`parse_computation`: the text form of computations (grammar/computations.lark) to IR.

Parsing runs in two steps: Lark builds a tree (iteratively) and the type subtrees become
fcore types; then a builder walks the tree with the names in scope, building type-checked
IR nodes. Every failure, syntactic or a type error, reports line, column and a caret."""

from __future__ import annotations

import json
import re

from fcore.intrinsics import definitions
from fcore.ir import nodes
from fcore.syntax import errors
from fcore.syntax.types import TypeBuilder, _transformer_base
from fcore.types import placements
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
    `parse_computation(str(c), c.leaves())` equals `c`."""
    from fcore.syntax.types import parse_with
    from fcore.computation import Computation
    tree = parse_with("computations.lark", text, "computation", _types_transformer())
    builder = _Builder(text, env or {})
    try:
        node = builder.build(tree.children[0], {})
    except RecursionError:
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


class _Builder:
    def __init__(self, text, env):
        self.text = text
        self.env = env

    def build(self, tree, scope):
        try:
            return getattr(self, "_" + tree.data)(tree, scope)
        except TypeParseError:
            raise
        except (TypeMismatchError, TypeError, AttributeError, IndexError) as e:
            raise _at(self.text, tree, str(e), ComputationTypeError) from None
        except (ValueError, NameError, KeyError) as e:
            raise _at(self.text, tree, str(e).strip("'\""), TypeParseError) from None

    def _name(self, tree, scope):
        name, quoted = ident(tree.children[0]), _quoted(tree.children[0])
        if name in scope:
            return nodes.Reference(name, scope[name])
        if name in ("SERVER", "CLIENTS") and not quoted:
            return nodes.Placement(placements.from_name(name))
        if name in definitions.INTRINSICS and not quoted:
            raise TypeError(f"the intrinsic {name} must be called with its argument here")
        bound = ", ".join(sorted(scope)) or "none"
        raise NameError(f"the name {name!r} is not bound here (names in scope: {bound})")

    def _call(self, tree, scope):
        function, argument = tree.children
        if function.data == "name" and not _quoted(function.children[0]) and \
                str(function.children[0]) in definitions.INTRINSICS:
            uri = str(function.children[0])
            if argument is None:
                raise TypeError(f"{uri} takes an argument")
            argument = self.build(argument, scope)
            fn_type = definitions.lookup(uri).function_type(argument.type_signature)
            return nodes.Call(nodes.Intrinsic(uri, fn_type), argument)
        function = self.build(function, scope)
        return nodes.Call(function, None if argument is None else self.build(argument, scope))

    def _select_name(self, tree, scope):
        return nodes.Selection(self.build(tree.children[0], scope),
                               name=ident(tree.children[1]))

    def _select_index(self, tree, scope):
        return nodes.Selection(self.build(tree.children[0], scope),
                               index=int(tree.children[1]))

    def _lambda(self, tree, scope):
        name, type_, body = tree.children
        name = None if name is None else ident(name)
        inner = scope if name is None else {**scope, name: type_}
        return nodes.Lambda(name, type_, self.build(body, inner))

    def _block(self, tree, scope):
        *bindings, result = tree.children
        locals_ = []
        for binding in bindings:
            name, value = binding.children
            node = self.build(value, scope)
            scope = {**scope, ident(name): node.type_signature}
            locals_.append((ident(name), node))
        return nodes.Block(locals_, self.build(result, scope))

    def _struct(self, tree, scope):
        if tree.children == [None]:
            return nodes.Struct([])
        elements = []
        for element in tree.children:
            if element.data == "named_element":
                elements.append((ident(element.children[0]),
                                 self.build(element.children[1], scope)))
            else:
                elements.append((None, self.build(element.children[0], scope)))
        return nodes.Struct(elements)

    def _leaf(self, tree, scope):
        name = ident(tree.children[0])
        if name not in self.env:
            known = ", ".join(sorted(self.env)) or "none"
            raise NameError(f"@{name} is not in env (env names: {known}); pass "
                            f"env={{'{name}': computation}}")
        return leaf_node(self.env[name], name)

    def _literal(self, tree, scope):
        value, type_ = tree.children
        return nodes.Literal(_value(value), type_)


def ident(token) -> str:
    """The name a name token stands for: a plain identifier, or a quoted one unescaped."""
    if not _quoted(token):
        return str(token)
    return re.sub(r"\\(.)", r"\1", str(token)[1:-1])


def _quoted(token):
    return getattr(token, "type", None) == "QUOTED_NAME"


def _value(tree):
    kind = tree.data
    if kind == "number":
        text = str(tree.children[0])
        return float(text) if any(c in text for c in ".eEna") else int(text)
    if kind == "complex_number":
        return complex(str(tree.children[0]).replace("inf", "inf").replace("nan", "nan"))
    if kind == "string":
        return json.loads(str(tree.children[0]))
    if kind in ("true", "false"):
        return kind == "true"
    if tree.children == [None]:
        return []
    return [_value(child) for child in tree.children]


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
