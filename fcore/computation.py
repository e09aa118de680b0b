"""`Computation`: a typed function in fcore's IR, callable in the current context.

Tracing makes computations (`fcore.federated_computation`, `fcore.tf_computation`), and so
does parsing their text (`fcore.parse_computation`); executors run them. Calling one asks
the current context of `fcore.context_stack` to invoke it."""

from __future__ import annotations

from fcore import context_stack
from fcore.ir import nodes, printer
from fcore.ir.analysis import free_names
from fcore.types import core


class Computation:
    """A typed computation: call it like a function, read its `type_signature`, print it as
    text (`str(comp)`), which `fcore.parse_computation` reads back."""

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
        """Asks the current context to invoke this computation: inside a traced federated
        computation the call becomes IR; otherwise the current execution context runs it."""
        context = context_stack.current()
        if not context.is_tracing and self.outer_names():
            raise TypeError(f"{self.name} was defined inside another federated computation "
                            f"and uses its names ({', '.join(sorted(self.outer_names()))}): it "
                            f"can only be called while that computation is traced.")
        return context.invoke(self, args, kwargs)

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
