"""IR nodes. Each is immutable, carries its `type_signature`, and checks it when built, so an
ill-typed node cannot exist. Equality is structural (TF leaves compare by identity)."""

from __future__ import annotations

import numpy as np

from fcore.types import core, placements
from fcore.types.assignability import first_difference, mismatch
from fcore.types.conversion import constant_type, to_type


class Node:
    """Base class of IR nodes."""

    __slots__ = ("type_signature", "_hash")

    def __setattr__(self, key, value):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _set(self, **fields):
        for key, value in fields.items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "_hash", hash((type(self).__name__,) + self._key()))

    def _key(self) -> tuple:
        raise NotImplementedError

    def children(self) -> tuple:
        return ()

    def __eq__(self, other):
        return self is other or (type(other) is type(self) and self._hash == other._hash
                                 and self._key() == other._key())

    def __hash__(self):
        return self._hash

    def __str__(self):
        from fcore.ir.printer import to_text
        return to_text(self)

    def __repr__(self):
        return f"<{type(self).__name__} {self}>"


class Reference(Node):
    """A name bound by an enclosing lambda or block."""

    __slots__ = ("name",)

    def __init__(self, name: str, type_signature):
        if not isinstance(name, str) or not name:
            raise TypeError(f"Reference: expected a name, found {name!r}.")
        self._set(name=name, type_signature=to_type(type_signature))

    def _key(self):
        return self.name, self.type_signature


class Selection(Node):
    """`source.name` or `source[index]` of a struct-typed source."""

    __slots__ = ("source", "name", "index")

    def __init__(self, source: Node, name: str | None = None, index: int | None = None):
        struct = source.type_signature
        if not isinstance(struct, core.StructType):
            raise TypeError(f"Cannot select {'.' + name if name else f'[{index}]'} from a "
                            f"value of type {struct}: it is not a struct.")
        if name is not None:
            index = struct.index_of(name)
            if index is None:
                valid = ", ".join(n for n in struct.names() if n)
                raise AttributeError(f"There is no such attribute {name!r} in this tuple. "
                                     f"Valid attributes: ({valid})")
        elif not isinstance(index, int) or not -len(struct) <= index < len(struct):
            raise IndexError(f"Index {index} is out of range for {struct}, which has "
                             f"{len(struct)} elements.")
        index %= len(struct)
        self._set(source=source, name=name, index=index, type_signature=struct[index])

    def _key(self):
        return self.source, self.name, self.index

    def children(self):
        return (self.source,)


class Struct(Node):
    """`<name=value, value, ...>`: a struct of other nodes."""

    __slots__ = ("elements",)

    def __init__(self, elements):
        elements = tuple((name, node) for name, node in elements)
        for name, node in elements:
            if not isinstance(node, Node):
                raise TypeError(f"Struct: element {name or ''} is not an IR node: {node!r}.")
        type_ = core.StructType([(name, node.type_signature) for name, node in elements])
        self._set(elements=elements, type_signature=type_)

    def _key(self):
        return self.elements

    def children(self):
        return tuple(node for _, node in self.elements)


class Call(Node):
    """`function(argument)`; the argument must be assignable to the parameter type."""

    __slots__ = ("function", "argument")

    def __init__(self, function: Node, argument: Node | None = None):
        fn_type = function.type_signature
        if not isinstance(fn_type, core.FunctionType):
            raise TypeError(f"Cannot call {function}: its type {fn_type} is not a function.")
        arg_type = None if argument is None else argument.type_signature
        if (fn_type.parameter is None) != (argument is None):
            expected = "no argument" if fn_type.parameter is None else \
                f"an argument of type {fn_type.parameter}"
            raise TypeError(f"{function} takes {expected}, found "
                            f"{'none' if argument is None else arg_type}.")
        if argument is not None:
            diff = first_difference(fn_type.parameter, arg_type)
            if diff is not None:
                raise mismatch(fn_type.parameter, arg_type, diff,
                               f"argument of {_short(function)}")
        self._set(function=function, argument=argument, type_signature=fn_type.result)

    def _key(self):
        return self.function, self.argument

    def children(self):
        return (self.function,) if self.argument is None else (self.function, self.argument)


class Lambda(Node):
    """`(name:T -> body)`, or `( -> body)` without a parameter."""

    __slots__ = ("parameter_name", "parameter_type", "body")

    def __init__(self, parameter_name, parameter_type, body: Node):
        parameter_type = to_type(parameter_type)
        if (parameter_name is None) != (parameter_type is None):
            raise TypeError("Lambda: give both a parameter name and type, or neither.")
        self._set(parameter_name=parameter_name, parameter_type=parameter_type, body=body,
                  type_signature=core.FunctionType(parameter_type, body.type_signature))

    def _key(self):
        return self.parameter_name, self.parameter_type, self.body

    def children(self):
        return (self.body,)


class Block(Node):
    """`(let a=x, b=y in result)`: sequential local bindings."""

    __slots__ = ("locals", "result")

    def __init__(self, locals_, result: Node):
        locals_ = tuple((name, node) for name, node in locals_)
        self._set(locals=locals_, result=result, type_signature=result.type_signature)

    def _key(self):
        return self.locals, self.result

    def children(self):
        return tuple(node for _, node in self.locals) + (self.result,)


class Intrinsic(Node):
    """A built-in federated operator (`federated_sum`, ...) at a concrete function type."""

    __slots__ = ("uri",)

    def __init__(self, uri: str, type_signature):
        type_signature = to_type(type_signature)
        if not isinstance(type_signature, core.FunctionType):
            raise TypeError(f"Intrinsic {uri}: expected a function type, found "
                            f"{type_signature}.")
        self._set(uri=uri, type_signature=type_signature)

    def _key(self):
        return self.uri, self.type_signature


class Literal(Node):
    """A constant tensor: `7` (int32), `2.5` (float32), `true`, `'Hello'` (str), or with an
    explicit type, `7:int64`, `[1.0,2.0]:float32[2]`. String literals are scalars."""

    __slots__ = ("value",)

    def __init__(self, value, type_signature=None):
        if type_signature is None:
            type_signature = _default_literal_type(value)
        type_signature = to_type(type_signature)
        if not isinstance(type_signature, core.TensorType) or \
                not type_signature.is_fully_defined():
            raise TypeError(f"Literal: expected a tensor type of known shape, found "
                            f"{type_signature}.")
        if type_signature.dtype.kind == "U":
            if type_signature.shape != () or not isinstance(value, (str, bytes, np.str_)):
                raise TypeError(f"Literal: a string literal must be one str, found {value!r}.")
            value = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        else:
            array = np.asarray(value)
            with np.errstate(over="ignore", invalid="ignore"):
                converted = array.astype(type_signature.dtype)
            rounds = type_signature.dtype.kind in "fc" and array.dtype.kind in "iufc" and \
                np.array_equal(np.isfinite(converted), np.isfinite(array))  # no overflow
            if array.shape != type_signature.shape or not rounds and not np.array_equal(
                    converted, array):
                raise TypeError(f"Literal: {value!r} is not a value of type {type_signature}.")
            converted.setflags(write=False)
            value = converted
        self._set(value=value, type_signature=type_signature)

    def _key(self):
        value = self.value if isinstance(self.value, str) else self.value.tobytes()
        return self.type_signature, value


class Placement(Node):
    """The placement literal `SERVER` or `CLIENTS`, of type `placement`."""

    __slots__ = ("placement",)

    def __init__(self, placement):
        self._set(placement=placements.to_placement(placement),
                  type_signature=core.PlacementType())

    def _key(self):
        return (self.placement.name,)


class TFLeaf(Node):
    """A TensorFlow computation, printed `@name`. `computation` runs it; leaves are equal only
    when they wrap the same computation."""

    __slots__ = ("name", "computation")

    def __init__(self, name: str, computation, type_signature):
        type_signature = to_type(type_signature)
        if not isinstance(type_signature, core.FunctionType):
            raise TypeError(f"TFLeaf {name}: expected a function type, found {type_signature}.")
        self._set(name=name, computation=computation, type_signature=type_signature)

    def _key(self):
        return self.name, id(self.computation), self.type_signature


def _default_literal_type(value):
    type_ = constant_type(value)
    if type_ is None:
        array = np.asarray(value)
        type_ = core.TensorType(array.dtype, array.shape)
    return type_


def _short(node):
    text = str(node)
    return text if len(text) <= 40 else text[:37] + "..."
