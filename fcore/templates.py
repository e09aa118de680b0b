"""`IterativeProcess`: a pair of computations, `initialize` and `next`, over a state."""

from __future__ import annotations

from fcore.computation import Computation
from fcore.types import core


class IterativeProcess:
    """`initialize: ( -> S)` and `next: (<S,...> -> <S,...>)` (or `(S -> S)`).

    `state = process.initialize()`, then `state, metrics = process.next(state, data)` round
    by round. The state types are checked to agree when the process is built."""

    def __init__(self, initialize: Computation, next: Computation):  # noqa: A002 (TFF's name)
        for name, comp in (("initialize", initialize), ("next", next)):
            if not isinstance(comp, Computation):
                raise TypeError(f"IterativeProcess: {name} must be an fcore computation, found "
                                f"{type(comp).__name__}.")
        init_type = initialize.type_signature
        if init_type.parameter is not None:
            raise TypeError(f"IterativeProcess: initialize must take no argument, found "
                            f"{init_type}.")
        state = init_type.result
        for what, found in (("parameter", next.type_signature.parameter),
                            ("result", next.type_signature.result)):
            if _state_part(found, state) is None:
                raise TypeError(f"IterativeProcess: next's {what} ({found}) neither is nor "
                                f"starts with the state type that initialize returns "
                                f"({state}).")
        self.initialize = initialize
        self.next = next

    @property
    def state_type(self):
        return self.initialize.type_signature.result

    def __repr__(self):
        return (f"IterativeProcess(initialize: {self.initialize.type_signature}, "
                f"next: {self.next.type_signature})")


def _state_part(type_, state):
    """`type_` itself if it holds the state, or its first element if that does."""
    if type_ is None:
        return None
    if type_.is_assignable_from(state):
        return type_
    if isinstance(type_, core.StructType) and len(type_) and type_[0].is_assignable_from(state):
        return type_[0]
    return None
