"""A NumPy oracle for the harness's AST: it defines what each program must compute,
independently of fcore (it imports no fcore module).

Values: NumPy scalars/arrays for tensors, `OStruct` for structs, Python lists for sequences,
`Fed` for federated values, Python callables for functions."""

from __future__ import annotations

import dataclasses

import numpy as np

from differential import dt_ast as A
from differential.dt_leaves import LEAVES


class OStruct:
    def __init__(self, items):
        self.items = list(items)  # [(name or None, value)]

    def __getitem__(self, i):
        return self.items[i][1]

    def get(self, name):
        for n, v in self.items:
            if n == name:
                return v
        raise KeyError(name)

    def __len__(self):
        return len(self.items)

    def __repr__(self):
        return "<" + ",".join(repr(v) if n is None else f"{n}={v!r}"
                              for n, v in self.items) + ">"


@dataclasses.dataclass
class Fed:
    placement: str          # "SERVER" or "CLIENTS"
    all_equal: bool
    value: object           # the one value (all-equal / server) or a list (per client)

    def members(self, n):
        if self.placement == "CLIENTS" and not self.all_equal:
            return list(self.value)
        return [self.value] * n if self.placement == "CLIENTS" else [self.value]


def _split(x):
    return OStruct([("hi", np.int32(x + 1)), ("lo", np.int32(x - 1))])


LEAF_FNS = {name: (fn if name != "split" else _split) for name, (_, _, fn) in LEAVES.items()}


# Element-wise helpers over structs -----------------------------------------------------------

def zipmap(fn, *values):
    first = values[0]
    if isinstance(first, OStruct):
        return OStruct([(n, zipmap(fn, *[v[i] for v in values]))
                        for i, (n, _) in enumerate(first.items)])
    return fn(*values)


def zeros_like_type(t, vlen=None):
    """Zeros of type t; a float32[?] has length vlen (the case's length of such values)."""
    if isinstance(t, A.TT):
        dt = np.dtype(t.dtype)
        shape = tuple(vlen if k == "?" else k for k in t.shape)
        assert None not in shape, "the zero of an unknown dimension needs vlen"
        return np.zeros(shape, dt)[()] if shape else dt.type(0)
    if isinstance(t, A.ST):
        return OStruct([(n, zeros_like_type(e, vlen)) for n, e in t.elements])
    raise TypeError(t)


def _dtype_of(x):
    return np.asarray(x).dtype


def fsum(values, t, vlen=None):
    total = zeros_like_type(t, vlen)
    for v in values:
        total = zipmap(lambda a, b: (np.asarray(a) + np.asarray(b)).astype(_dtype_of(a))[()],
                       total, v)
    return total


def fmean(values, t, weights=None, vlen=None):
    if weights is None:
        weights = [np.float32(1)] * len(values)
    wsum = np.float64(sum(float(w) for w in weights))

    def one(*xs):
        acc = sum(np.asarray(x, np.float64) * float(w) for x, w in zip(xs, weights))
        with np.errstate(all="ignore"):
            out = np.asarray(acc, np.float64) / wsum
        return np.asarray(out, _dtype_of(xs[0]) if xs else np.float32)[()]
    if not values:
        return zipmap(lambda z: np.asarray(np.nan, _dtype_of(z))[()] if np.ndim(z) == 0
                      else np.full(np.shape(z), np.nan, _dtype_of(z)), zeros_like_type(t, vlen))
    return zipmap(one, *values)


def fext(values, fn):
    return zipmap(lambda *xs: fn(np.stack([np.asarray(x) for x in xs]), axis=0)[()], *values)


# Evaluation ----------------------------------------------------------------------------------

class Oracle:
    def __init__(self, num_clients, vlen=None):
        self.n = num_clients
        self.vlen = vlen  # the length of float32[?] values

    def run(self, program, arg=None):
        """`program` is a top-level Lambda; `arg` its oracle argument value (or None)."""
        fn = self.ev(program, {})
        return fn() if program.ptype is None else fn(arg)

    def ev(self, e, env):
        m = getattr(self, "ev_" + type(e).__name__)
        return m(e, env)

    def ev_Var(self, e, env):
        return env[e.name]

    def ev_Lit(self, e, env):
        if e.t.shape:
            return np.asarray(e.value, np.float32)
        return np.dtype(e.t.dtype).type(e.value)

    def ev_Struct(self, e, env):
        return OStruct([(n, self.ev(x, env)) for n, x in e.elements])

    def ev_SelName(self, e, env):
        return self.ev(e.source, env).get(e.name)

    def ev_SelIdx(self, e, env):
        return self.ev(e.source, env)[e.index]

    def ev_Lambda(self, e, env):
        if e.ptype is None:
            return lambda: self.ev(e.body, env)

        def fn(arg):
            inner = dict(env)
            if e.unpack:
                for name in e.ptype.names:
                    inner[name] = arg.get(name)
            else:
                inner[e.param] = arg
            return self.ev(e.body, inner)
        return fn

    def ev_Let(self, e, env):
        env = dict(env)
        for name, x in e.bindings:
            env[name] = self.ev(x, env)
        return self.ev(e.body, env)

    def ev_Call(self, e, env):
        fn = self.ev(e.fn, env)
        return fn() if e.arg is None else fn(self.ev(e.arg, env))

    def ev_Leaf(self, e, env):
        return LEAF_FNS[e.name]

    def ev_Intr(self, e, env):
        arg = self.ev(e.arg, env)
        return getattr(self, "i_" + e.name)(arg, e)

    # Intrinsics --------------------------------------------------------------------------

    def i_federated_broadcast(self, v, e):
        return Fed("CLIENTS", True, v.value)

    def i_federated_value_at_server(self, v, e):
        return Fed("SERVER", True, v)

    def i_federated_value_at_clients(self, v, e):
        return Fed("CLIENTS", True, v)

    def i_federated_eval_at_server(self, fn, e):
        return Fed("SERVER", True, fn())

    def i_federated_eval_at_clients(self, fn, e):
        return Fed("CLIENTS", False, [fn() for _ in range(self.n)])

    def i_federated_map(self, arg, e):
        fn, v = arg[0], arg[1]
        return Fed("CLIENTS", False, [fn(m) for m in v.members(self.n)])

    def i_federated_apply(self, arg, e):
        fn, v = arg[0], arg[1]
        return Fed("SERVER", True, fn(v.value))

    def _member_type(self, e):
        return e.t.member

    def i_federated_sum(self, v, e):
        return Fed("SERVER", True, fsum(v.members(self.n), e.t.member, self.vlen))

    def i_federated_mean(self, v, e):
        return Fed("SERVER", True, fmean(v.members(self.n), e.t.member, vlen=self.vlen))

    def i_federated_weighted_mean(self, arg, e):
        values, weights = arg[0].members(self.n), arg[1].members(self.n)
        return Fed("SERVER", True, fmean(values, e.t.member, weights, self.vlen))

    def i_federated_min(self, v, e):
        return Fed("SERVER", True, fext(v.members(self.n), np.min))

    def i_federated_max(self, v, e):
        return Fed("SERVER", True, fext(v.members(self.n), np.max))

    def i_federated_aggregate(self, arg, e):
        v, zero, accumulate, merge, report = (arg[i] for i in range(5))
        acc = zero
        for member in v.members(self.n):
            acc = accumulate(OStruct([(None, acc), (None, member)]))
        acc = merge(OStruct([(None, zero), (None, acc)]))  # zero is an identity of merge
        return Fed("SERVER", True, report(acc))

    def i_federated_secure_sum(self, arg, e):
        v, bound = arg[0], arg[1]
        members = v.members(self.n)
        for m in members:
            assert 0 <= int(m) <= int(bound), "the generator keeps secure-sum inputs in range"
        return Fed("SERVER", True, fsum(members, e.t.member, self.vlen))

    def i_federated_secure_sum_bitwidth(self, arg, e):
        v, bits = arg[0], arg[1]
        members = v.members(self.n)
        for m in members:
            assert 0 <= int(m) < 2 ** int(bits)
        return Fed("SERVER", True, fsum(members, e.t.member, self.vlen))

    def _zip(self, s, n):
        if isinstance(s, Fed):
            return s.members(n)
        cols = [(name, self._zip(x, n)) for name, x in s.items]
        count = len(cols[0][1])
        return [OStruct([(name, col[i]) for name, col in cols]) for i in range(count)]

    def i_federated_zip_at_server(self, s, e):
        return Fed("SERVER", True, self._zip(s, 1)[0])

    def i_federated_zip_at_clients(self, s, e):
        return Fed("CLIENTS", False, self._zip(s, self.n))

    def i_sequence_map(self, arg, e):
        fn, seq = arg[0], arg[1]
        return [fn(x) for x in seq]

    def i_sequence_reduce(self, arg, e):
        seq, zero, op = arg[0], arg[1], arg[2]
        acc = zero
        for x in seq:
            acc = op(OStruct([(None, acc), (None, x)]))
        return acc

    def i_sequence_sum(self, seq, e):
        return fsum(seq, e.t, self.vlen)
