"""The tracing context: while a federated computation is traced, every call it makes is bound
to a fresh local name, so each runs once however often its result is used."""

from __future__ import annotations

import contextlib
import os
import sys
import threading

from fcore.ir import nodes

_state = threading.local()
_FCORE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Names:
    """The names a whole traced computation uses, nested traces included: every parameter
    and local that tracing creates is unique in it, so a nested computation that refers to
    an outer name can never capture one of its own (hygiene)."""

    def __init__(self):
        self.taken: set[str] = set()
        self.counter = 0


class TraceContext:
    """One function being traced. `parent` is the trace around it (a nested computation or
    a function given to an intrinsic): they share one pool of names."""

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


def _stack():
    if not hasattr(_state, "stack"):
        _state.stack = []
    return _state.stack


def current() -> TraceContext | None:
    stack = _stack()
    return stack[-1] if stack else None


@contextlib.contextmanager
def tracing(context: TraceContext):
    _stack().append(context)
    try:
        yield context
    finally:
        _stack().pop()


def user_location():
    """`file:line` of the innermost stack frame outside fcore (the user's code)."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        if not filename.startswith(_FCORE_DIR + os.sep) and "contextlib" not in filename:
            return f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back
    return "<unknown>"


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
