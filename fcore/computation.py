"""`Computation`: a typed function in fcore's IR, callable in the current context.

Tracing makes computations (`fcore.federated_computation`, `fcore.tf_computation`), and so
does parsing their text (`fcore.parse_computation`); executors run them. Calling one asks
the current context of `fcore.context_stack` to invoke it."""

from __future__ import annotations

from fcore import context_stack
from fcore.ir import nodes, printer
from fcore.ir.analysis import free_names
from fcore.struct import Struct
from fcore.types import core
from fcore.types.errors import TypeMismatchError


class Computation:
    """A typed computation: call it like a function, read its `type_signature`, print it as
    text (`str(comp)`), which `fcore.parse_computation` reads back."""

    #: The computation that argument errors name, where the user called another one that
    #: runs this one as its twin (FedAvg's `next` and its twin with the round report).
    shown_as = None

    def __init__(self, ir: nodes.Node, name: str, result_type=None):
        if not isinstance(ir.type_signature, core.FunctionType):
            raise TypeError(f"A computation must have a function type, found "
                            f"{ir.type_signature}.")
        self.ir = ir
        self.name = name
        # `result_type` equals the IR's result type, and also records Python containers.
        self.type_signature = ir.type_signature if result_type is None else \
            core.FunctionType(ir.type_signature.parameter, result_type)

    def __call__(self, *args, **kwargs):
        """Packs the Python arguments into the one argument of the parameter type and asks
        the current context to invoke this computation with it: inside a traced federated
        computation the call becomes IR; otherwise the current execution context runs it."""
        context = context_stack.current()
        if not context.is_tracing and self.outer_names():
            raise TypeError(f"{self.name} was defined inside another federated computation "
                            f"and uses its names ({', '.join(sorted(self.outer_names()))}): it "
                            f"can only be called while that computation is traced.")
        shown = self.shown_as or self
        argument = pack_arguments(self.type_signature.parameter, args, kwargs, shown.name)
        return context.invoke(self, argument)

    def outer_names(self) -> frozenset:
        """The names of an enclosing computation this one refers to: a computation defined
        inside another (a function given to `sequence_reduce` that uses an outer parameter)
        exists only as part of it. Empty for a computation of its own."""
        names = getattr(self, "_outer_names", None)
        if names is None:
            names = self._outer_names = frozenset(free_names(self.ir))
        return names

    def leaves(self) -> dict:
        """`{name: TF computation}` for the `@name` leaves in `str(self)`."""
        return printer.leaves(self.ir)

    def to_text(self, formatted=None) -> str:
        text = printer.to_text(self.ir)
        if formatted or (formatted is None and len(text) > 120):
            return printer.to_text(self.ir, formatted=True)
        return text

    def __str__(self):
        return self.to_text()

    def __eq__(self, other):
        return isinstance(other, Computation) and self.ir == other.ir

    def __hash__(self):
        return hash(self.ir)

    def __repr__(self):
        return f"<Computation {self.name}: {self.type_signature}>"


def pack_arguments(parameter_type, args, kwargs, name):
    """The single argument for `parameter_type` from Python positional and keyword arguments.

    Several arguments fill a struct parameter by position and then by name; one argument is
    the whole parameter (or its only element)."""
    count = len(args) + len(kwargs)
    if parameter_type is None:
        if count:
            raise TypeMismatchError(f"{name} takes no arguments, found {count}.")
        return None
    if count == 0:
        raise TypeMismatchError(f"{name} takes an argument of type {parameter_type}, found none.",
                                parameter_type)
    if count == 1 and not kwargs:
        return args[0]
    if not isinstance(parameter_type, core.StructType):
        raise TypeMismatchError(f"{name} takes one argument of type {parameter_type}, found "
                                f"{count}.", parameter_type)
    elements = list(parameter_type.items())
    if len(args) > len(elements):
        raise TypeMismatchError(f"{name} takes {len(elements)} arguments ({parameter_type}), "
                                f"found {len(args)} positional arguments.", parameter_type)
    filled = list(args)
    names = [n for n, _ in elements]
    for key in kwargs:
        if key not in names:
            raise TypeError(f"{name} got an unexpected keyword argument {key!r}; its parameter "
                            f"is {parameter_type}.")
        if names.index(key) < len(args):
            raise TypeError(f"{name} got two values for the argument {key!r}.")
    for index in range(len(args), len(elements)):
        key = names[index]
        if key is None or key not in kwargs:
            raise TypeError(f"{name} is missing the argument {key or index!r} of "
                            f"{parameter_type}.")
        filled.append(kwargs[key])
    return Struct(list(zip(names, filled)))
