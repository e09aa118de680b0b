"""The context stack: what calling a computation means right now.

Calling a computation packs its Python arguments into one argument and asks the current
context to `invoke(computation, argument)` it, in the spirit of TFF's
context stack. While a federated computation is traced, the current context is a tracing
context (the call becomes IR); otherwise it is an execution context (the call runs on an
executor). Contexts are installed with `install`, one stack per thread; when none is
installed, the default context runs calls (fcore's execution layer sets it: the fast
executor).

This module depends on nothing else in fcore, so every layer can use it.
"""

from __future__ import annotations

import contextlib
import threading

_state = threading.local()
_default = None


class Context:
    """A context computations are invoked in."""

    #: True for a context that traces calls into IR rather than running them.
    is_tracing = False

    def invoke(self, computation, argument):
        """Calls `computation` with its one argument (None for a computation without a
        parameter), packed from the caller's Python arguments as TFF packs them."""
        raise NotImplementedError


def _stack():
    stack = getattr(_state, "stack", None)
    if stack is None:
        stack = _state.stack = []
    return stack


def current() -> Context:
    """The innermost installed context, else the default context."""
    stack = _stack()
    if stack:
        return stack[-1]
    if _default is None:
        raise RuntimeError("No context to run computations in: import fcore (its execution "
                           "layer installs the default context).")
    return _default


def installed() -> Context | None:
    """The innermost installed context, or None when none is (the default applies)."""
    stack = _stack()
    return stack[-1] if stack else None


def innermost(kind) -> Context | None:
    """The innermost installed context that is an instance of `kind`, or None."""
    for context in reversed(_stack()):
        if isinstance(context, kind):
            return context
    return None


def set_default(context: Context):
    """Sets the context used when none is installed."""
    global _default
    _default = context


@contextlib.contextmanager
def install(context: Context):
    """Makes `context` the current one inside the `with` block."""
    stack = _stack()
    stack.append(context)
    try:
        yield context
    finally:
        stack.pop()
