"""The harness's own small AST for fcore programs (independent of fcore's IR): types,
expressions, and the printer to fcore's text language."""

from __future__ import annotations

import dataclasses
import keyword
import re
import unicodedata
from typing import Optional

# Types -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TT:
    """A tensor: dtype 'int32' or 'float32', shape () or (k,); k is "?" for an unknown
    dimension (`float32[?]`)."""
    dtype: str
    shape: tuple = ()

    def __str__(self):
        if not self.shape:
            return self.dtype
        return f"{self.dtype}[{','.join(map(str, self.shape))}]"


@dataclasses.dataclass(frozen=True)
class ST:
    """A struct: a tuple of (name or None, type)."""
    elements: tuple

    def __str__(self):
        return "<" + ",".join(t_str(t) if n is None else f"{n}={t_str(t)}"
                              for n, t in self.elements) + ">"

    @property
    def names(self):
        return [n for n, _ in self.elements]

    @property
    def types(self):
        return [t for _, t in self.elements]

    def all_named(self):
        return bool(self.elements) and all(n is not None for n in self.names)


@dataclasses.dataclass(frozen=True)
class SeqT:
    element: object

    def __str__(self):
        return f"{t_str(self.element)}*"


@dataclasses.dataclass(frozen=True)
class FedT:
    member: object
    placement: str  # "SERVER" or "CLIENTS"
    all_equal: bool

    def __str__(self):
        m = t_str(self.member)
        if self.placement == "SERVER":
            return f"{m}@SERVER"
        return f"{m}@CLIENTS" if self.all_equal else "{" + m + "}@CLIENTS"


@dataclasses.dataclass(frozen=True)
class FnT:
    param: object  # a type or None
    result: object

    def __str__(self):
        p = "" if self.param is None else t_str(self.param)
        return f"({p} -> {t_str(self.result)})"


def t_str(t):
    return str(t)


I32, F32, V2 = TT("int32"), TT("float32"), TT("float32", (2,))
VU = TT("float32", ("?",))  # values of one unknown length per case (Case.vlen)


def has_unknown(t):
    """Whether t has a tensor of unknown dimensions anywhere."""
    if isinstance(t, TT):
        return "?" in t.shape
    if isinstance(t, ST):
        return any(has_unknown(e) for e in t.types)
    if isinstance(t, SeqT):
        return has_unknown(t.element)
    if isinstance(t, FedT):
        return has_unknown(t.member)
    if isinstance(t, FnT):
        return (t.param is not None and has_unknown(t.param)) or has_unknown(t.result)
    return False


def server(t):
    return FedT(t, "SERVER", True)


def clients(t):
    return FedT(t, "CLIENTS", False)


def clients_eq(t):
    return FedT(t, "CLIENTS", True)


def has_fed(t):
    if isinstance(t, FedT):
        return True
    if isinstance(t, ST):
        return any(has_fed(e) for e in t.types)
    if isinstance(t, FnT):
        return (t.param is not None and has_fed(t.param)) or has_fed(t.result)
    return False


def has_fn(t):
    if isinstance(t, FnT):
        return True
    if isinstance(t, ST):
        return any(has_fn(e) for e in t.types)
    if isinstance(t, (SeqT, FedT)):
        return has_fn(t.element if isinstance(t, SeqT) else t.member)
    return False


def has_seq(t):
    if isinstance(t, SeqT):
        return True
    if isinstance(t, ST):
        return any(has_seq(e) for e in t.types)
    if isinstance(t, FedT):
        return has_seq(t.member)
    return False


def tensor_leaves(t):
    if isinstance(t, TT):
        return [t]
    if isinstance(t, ST):
        return [x for e in t.types for x in tensor_leaves(e)]
    return None


def assignable(expected, found):
    """fcore's (TFF's) assignability, for the few forms the generator makes."""
    if expected == found:
        return True
    if isinstance(expected, FedT) and isinstance(found, FedT):
        if expected.placement != found.placement or expected.member != found.member:
            return False
        return not expected.all_equal or found.all_equal
    return False


# Expressions -------------------------------------------------------------------------------
# Every node carries its type (`t`), computed by the generator.

@dataclasses.dataclass(eq=False)
class Var:
    name: str
    t: object


@dataclasses.dataclass(eq=False)
class Lit:
    value: object  # int, float, or list of floats (a vector)
    t: object


@dataclasses.dataclass(eq=False)
class Struct:
    elements: list  # [(name or None, expr)]
    t: object


@dataclasses.dataclass(eq=False)
class SelName:
    source: object
    name: str
    t: object


@dataclasses.dataclass(eq=False)
class SelIdx:
    source: object
    index: int
    t: object


@dataclasses.dataclass(eq=False)
class Lambda:
    param: Optional[str]
    ptype: object  # None for no parameter
    body: object
    t: object
    unpack: bool = False      # the body sees the (named) struct elements as variables
    traced_as: str = "decorated"  # tracing: "decorated" (typed), "plain" (a Python def)
    py_order: Optional[list] = None  # tracing: the Python parameter order when unpacked


@dataclasses.dataclass(eq=False)
class Let:
    bindings: list  # [(name, expr)]
    body: object
    t: object


@dataclasses.dataclass(eq=False)
class Call:
    fn: object
    arg: object  # or None
    t: object


@dataclasses.dataclass(eq=False)
class Leaf:
    name: str
    t: object


@dataclasses.dataclass(eq=False)
class Intr:
    """An intrinsic call `name(arg)`; the argument is a struct for most intrinsics."""
    name: str
    arg: object
    t: object


def children(e):
    if isinstance(e, Struct):
        return [x for _, x in e.elements]
    if isinstance(e, (SelName, SelIdx)):
        return [e.source]
    if isinstance(e, Lambda):
        return [e.body]
    if isinstance(e, Let):
        return [x for _, x in e.bindings] + [e.body]
    if isinstance(e, Call):
        return [e.fn] + ([e.arg] if e.arg is not None else [])
    if isinstance(e, Intr):
        return [e.arg]
    return []


def walk(e):
    yield e
    for c in children(e):
        yield from walk(c)


def intrinsics_used(e):
    return {x.name for x in walk(e) if isinstance(x, Intr)}


# Printing to fcore's text language -----------------------------------------------------------
# A name that is a keyword or literal, a placement, in the intrinsics' namespace or not a plain
# identifier is written between backquotes (`\` escapes a backquote or backslash); struct
# element names in types are always plain identifiers (they may still be keywords: `<in=int32>`).

PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_/]*\Z")
RESERVED = {"let", "in", "true", "false", "inf", "nan", "SERVER", "CLIENTS"}


def quote(name):
    if PLAIN_NAME.match(name) and name not in RESERVED and \
            not name.startswith(("federated_", "sequence_")):
        return name
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def struct_name_ok(name):
    """Struct element names (in types too) must be plain identifiers."""
    return bool(PLAIN_NAME.match(name))


# Names the generated Python code uses itself (dt_trace.build's namespace).
PY_RESERVED = {"fcore", "L", "T", "np", "OrderedDict", "_sel", "_idx"}


def py_name_ok(name):
    """Whether `name` can be a Python parameter name as it is (Python normalizes identifiers
    to NFKC, so only names already in that form keep their spelling)."""
    return (name.isidentifier() and not keyword.iskeyword(name) and name not in PY_RESERVED
            and unicodedata.normalize("NFKC", name) == name)


def fmt_lit(value, t):
    if t.shape:
        return "[" + ",".join(_float(v) for v in value) + f"]:{t}"
    if t.dtype == "float32":
        return _float(value)
    return str(int(value))


def _float(v):
    return repr(float(v))


class Printer:
    def __init__(self):
        self.fresh = 0

    def new_name(self):
        self.fresh += 1
        return f"_arg{self.fresh}"

    def p(self, e):
        if isinstance(e, Var):
            return quote(e.name)
        if isinstance(e, Lit):
            return fmt_lit(e.value, e.t)
        if isinstance(e, Struct):
            return "<" + ",".join(self.p(x) if n is None else f"{quote(n)}={self.p(x)}"
                                  for n, x in e.elements) + ">"
        if isinstance(e, SelName):
            return f"{self.p_postfix(e.source)}.{quote(e.name)}"
        if isinstance(e, SelIdx):
            return f"{self.p_postfix(e.source)}[{e.index}]"
        if isinstance(e, Lambda):
            if e.ptype is None:
                return f"( -> {self.p(e.body)})"
            if e.unpack:
                name = self.new_name()
                binds = ",".join(f"{quote(n)}={name}.{quote(n)}" for n in e.ptype.names)
                return f"({name}:{e.ptype} -> (let {binds} in {self.p(e.body)}))"
            return f"({quote(e.param)}:{e.ptype} -> {self.p(e.body)})"
        if isinstance(e, Let):
            binds = ",".join(f"{quote(n)}={self.p(x)}" for n, x in e.bindings)
            return f"(let {binds} in {self.p(e.body)})"
        if isinstance(e, Call):
            arg = "" if e.arg is None else self.p(e.arg)
            return f"{self.p_postfix(e.fn)}({arg})"
        if isinstance(e, Leaf):
            return f"@{e.name}"
        if isinstance(e, Intr):
            return f"{e.name}({self.p(e.arg)})"
        raise TypeError(e)

    def p_postfix(self, e):
        # Every form prints as a grammar atom or postfix, so no parentheses are needed.
        return self.p(e)


def to_text(e):
    return Printer().p(e)


# Types as fcore infers them ------------------------------------------------------------------
# The generator may use a value of a narrower type where a wider one is expected (an all-equal
# `T@CLIENTS` for `{T}@CLIENTS`); `retype` recomputes each node's type bottom-up, as fcore
# does, so results are compared at the type fcore reports.

def retype(e, env=None):
    """`env`: the types of the names in scope, as fcore infers them (a let-bound name has its
    bound value's type, which may be narrower than the type the generator asked for)."""
    env = {} if env is None else env
    if isinstance(e, Var):
        e.t = env.get(e.name, e.t)
        return e
    if isinstance(e, Lambda):
        inner = dict(env)
        if e.unpack:
            inner.update(e.ptype.elements)
        elif e.ptype is not None:
            inner[e.param] = e.ptype
        retype(e.body, inner)
        e.t = FnT(e.ptype, e.body.t)
        return e
    if isinstance(e, Let):
        inner = dict(env)
        for n, x in e.bindings:
            retype(x, inner)
            inner[n] = x.t
        retype(e.body, inner)
        e.t = e.body.t
        return e
    for c in children(e):
        retype(c, env)
    if isinstance(e, Struct):
        e.t = ST(tuple((n, x.t) for n, x in e.elements))
    elif isinstance(e, SelName):
        e.t = dict(e.source.t.elements)[e.name]
    elif isinstance(e, SelIdx):
        e.t = e.source.t.elements[e.index][1]
    elif isinstance(e, Call):
        e.t = e.fn.t.result
    elif isinstance(e, Intr):
        e.t = _intrinsic_result(e.name, e.arg.t, e.t)
    return e


def _intrinsic_result(name, a, old):
    def els(i):
        return a.elements[i][1]
    if name == "federated_broadcast":
        return clients_eq(a.member)
    if name == "federated_value_at_server":
        return server(a)
    if name == "federated_value_at_clients":
        return clients_eq(a)
    if name == "federated_eval_at_server":
        return server(a.result)
    if name == "federated_eval_at_clients":
        return clients(a.result)
    if name == "federated_map":
        return clients(els(0).result)
    if name == "federated_apply":
        return server(els(0).result)
    if name in ("federated_sum", "federated_mean", "federated_min", "federated_max"):
        return server(a.member)
    if name in ("federated_weighted_mean", "federated_secure_sum",
                "federated_secure_sum_bitwidth"):
        return server(els(0).member)
    if name == "federated_aggregate":
        return server(els(4).result)
    if name == "federated_zip_at_server":
        return server(_unplaced(a))
    if name == "federated_zip_at_clients":
        return clients(_unplaced(a))
    if name == "sequence_map":
        return SeqT(els(0).result)
    if name == "sequence_reduce":
        return els(1)
    if name == "sequence_sum":
        return a.element
    raise ValueError(name)


def _unplaced(t):
    if isinstance(t, FedT):
        return t.member
    return ST(tuple((n, _unplaced(x)) for n, x in t.elements))
