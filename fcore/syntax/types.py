"""`parse_type`: the text notation of types (grammar/types.lark) back to fcore types."""

from __future__ import annotations

from fcore.syntax import errors, grammars
from fcore.types import conversion, core, dtypes, placements
from fcore.types.errors import TypeParseError


def _transformer_base():
    import lark
    return lark.visitors.Transformer_NonRecursive


_UNKNOWN_RANK = object()  # `[...]`; None already means "no shape written"


class TypeBuilder:
    """Callbacks from the grammar's rules to type constructors; mixed into a Lark
    non-recursive transformer, so both grammars (types, computations) share it."""

    def start(self, children):
        return children[0]

    def tensor(self, children):
        ident, shape = children
        name = str(ident)
        if name in dtypes.DTYPES:
            if shape is _UNKNOWN_RANK:
                return core.TensorType(name, None)
            return core.TensorType(name, () if shape is None else shape)
        if shape is None:
            if name == "placement":
                return core.PlacementType()
            if core.ABSTRACT_PATTERN.match(name):
                return core.AbstractType(name)
        raise ValueError(f"unknown dtype {name!r}; expected one of: "
                         f"{', '.join(dtypes.DTYPE_NAMES)}")

    def shape(self, children):
        return tuple(children)

    def scalar_shape(self, children):
        return ()

    def unknown_rank(self, children):
        return _UNKNOWN_RANK

    def known_dim(self, children):
        return int(children[0])

    def unknown_dim(self, children):
        return None

    def unknown_rank_tff(self, children):
        return core.TensorType(str(children[0]), None)

    def struct(self, children):
        if children == [None]:
            return core.StructType([])
        return core.StructType(list(children))

    def named_element(self, children):
        return str(children[0]), children[1]

    def unnamed_element(self, children):
        return None, children[0]

    def sequence(self, children):
        return core.SequenceType(children[0])

    def function(self, children):
        return core.FunctionType(children[0], children[1])

    def federated(self, children):
        return core.FederatedType(children[0], placements.from_name(str(children[1])), False)

    def federated_all_equal(self, children):
        return core.FederatedType(children[0], placements.from_name(str(children[1])), True)


def _type_transformer():
    return type("TypeTransformer", (TypeBuilder, _transformer_base()), {})()


def parse_with(grammar: str, text: str, what: str, transformer):
    """Parses `text` with `grammar`, then builds the result with `transformer`; any failure
    becomes a `TypeParseError` with line, column and a caret."""
    with grammars.gc_paused():
        return transform(parse_tree(grammar, text, what), text, what, transformer)


def parse_tree(grammar: str, text: str, what: str):
    """The Lark tree of `text` in `grammar`; a syntax error (or nesting deeper than
    `errors.MAX_DEPTH`) becomes a `TypeParseError` with line, column and a caret."""
    import lark
    if not isinstance(text, str):
        raise TypeError(f"Expected {what} text (a str), found {type(text).__name__}.")
    errors.check_depth(text, what)
    parser = grammars.lalr_parser(grammar)
    try:
        return parser.parse(text)
    except lark.exceptions.UnexpectedInput as e:
        raise errors.from_lark(e, text, _terminals(parser), what) from None


def transform(tree, text: str, what: str, transformer):
    """`transformer` applied to `tree` (of `text`), its failures reported at their place."""
    import lark
    try:
        return transformer.transform(tree)
    except lark.exceptions.VisitError as e:
        cause = e.orig_exc
        if isinstance(cause, TypeParseError):
            raise cause from None
        meta = getattr(e.obj, "meta", None)
        line = getattr(meta, "line", 1) if meta is not None and not meta.empty else 1
        column = getattr(meta, "column", 1) if meta is not None and not meta.empty else 1
        raise errors.error(text, line, column, str(cause).rstrip("."), what) from None


def _terminals(parser):
    return {t.name: t.pattern for t in parser.terminals}


def parse_type(text: str) -> core.Type:
    """Parses the compact (or formatted) notation of a type.

    >>> str(parse_type('<x=float32[?,784],y=int32[?]>*'))
    '<x=float32[?,784],y=int32[?]>*'

    Raises `fcore.TypeParseError` (a `ValueError`) with line, column, a caret under the spot
    and what was expected there.
    """
    return parse_with("types.lark", text, "type", _type_transformer())


conversion.set_text_parser(parse_type)  # `to_type('float32[?]')` reads text with this parser
