"""The tracing context: while a federated computation is traced, every call it makes is bound
to a fresh local name, so each runs once however often its result is used. It is the
current context of `fcore.context_stack` while the function is traced."""

from __future__ import annotations

import contextlib
import os

from fcore import context_stack
from fcore.ir import nodes

_FCORE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Names:
    """The names a whole traced computation uses, nested traces included: every parameter
    and local that tracing creates is unique in it, so a nested computation that refers to
    an outer name can never capture one of its own (hygiene)."""

    def __init__(self):
        self.taken: set[str] = set()
        self.counter = 0


class TraceContext(context_stack.Context):
    """One function being traced. `parent` is the trace around it (a nested computation or
    a function given to an intrinsic): they share one pool of names. Computations called
    while it is current become calls in the IR."""

    is_tracing = True

    def __init__(self, parent: TraceContext | None = None):
        self.bindings: list[tuple[str, nodes.Node]] = []
        self.parent = parent
        self._names = parent._names if parent is not None else _Names()
        self.selections = {}  # (federated struct node, name, index) -> the mapped Value

    @property
    def reserved(self):
        return self._names.taken

    def unique(self, name):
        """`name`, or `name_1`, `name_2`, ... : the first not yet used in the computation."""
        candidate, suffix = name, 0
        while candidate in self._names.taken:
            suffix += 1
            candidate = f"{name}_{suffix}"
        self._names.taken.add(candidate)
        return candidate

    def fresh_name(self, prefix="_var"):
        names = self._names
        while True:
            names.counter += 1
            name = f"{prefix}{names.counter}"
            if name not in names.taken:
                names.taken.add(name)
                return name

    def bind(self, node: nodes.Node) -> nodes.Reference:
        name = self.fresh_name()
        self.bindings.append((name, node))
        return nodes.Reference(name, node.type_signature)

    def invoke(self, computation, argument):
        from fcore.tracing import calls
        return calls.call_packed(computation.ir, argument, computation.type_signature.result)


def current() -> TraceContext | None:
    """The trace in progress (the current context, if it traces), else None."""
    context = context_stack.installed()
    return context if isinstance(context, TraceContext) else None


@contextlib.contextmanager
def tracing(context: TraceContext):
    with context_stack.install(context):
        yield context


def traceback_location(tb, preferred_file=None):
    """`file:line` of the innermost traceback entry in `preferred_file` (the user's function),
    else of the innermost one outside fcore, or None."""
    location = preferred = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        here = f"{filename}:{tb.tb_lineno}"
        if not os.path.abspath(filename).startswith(_FCORE_DIR + os.sep):
            location = here
        if filename == preferred_file:
            preferred = here
        tb = tb.tb_next
    return preferred or location
