"""Hypothesis strategies for random well-typed programs in the harness's AST (dt_ast).

The generator is type directed: `G.gen(T, scope, depth)` builds an expression of type T
from the variables in scope (with selections into structs), literals, TF leaves, lets,
lambdas (called at once, bound, or given to intrinsics) and every intrinsic of the text
language. Values stay small integers (floats hold integers) so float32 sums are exact."""

from __future__ import annotations

import dataclasses

from hypothesis import reject
from hypothesis import strategies as st

from differential import dt_ast as A
from differential.dt_ast import (F32, I32, V2, VU, FedT, FnT, SeqT, ST, TT, clients,
                                 clients_eq, server)
from differential.dt_leaves import LEAVES, leaf_type
from differential.dt_oracle import OStruct

PLAIN_VARS = ["x", "y", "a", "b", "v", "d", "acc", "offset"]
# Names the text language must quote (keywords, literals, placements, the intrinsics'
# namespace, non-ASCII, a backquote or backslash inside) or that are plain but unusual (`/`).
# In traced programs the valid Python identifiers among them are Python parameter names.
ODD_VARS = ["nan", "inf", "true", "false", "let", "in", "SERVER", "CLIENTS", "federated_sum",
            "federated_broadcast", "sequence_map", "d\u00e9p\u00f4t", "a`b", "c\\d", "w/b"]
VAR_NAMES = PLAIN_VARS + ODD_VARS
FIELD_NAMES = ["a", "b", "k", "j", "hi", "lo", "t", "n"]
# Struct element names must be plain identifiers ([A-Za-z_][A-Za-z0-9_/]*), keywords allowed.
ODD_FIELDS = ["inf", "nan", "true", "false", "let", "in", "SERVER", "federated_map", "k/v"]
# A parameter named like the intrinsic its body may call on it (`federated_broadcast(
# `federated_broadcast`)`; in Python `fcore.federated_broadcast(federated_broadcast)`).
INTRINSIC_NAMED = {"SERVER": ["federated_broadcast", "federated_apply"],
                   "CLIENTS": ["federated_sum", "federated_mean", "federated_map"]}

# Top-level parameter element types: unplaced data, sequences, and federated values.
PARAM_TYPES = [
    I32, F32, V2,
    ST((("k", F32), ("j", I32))),
    SeqT(I32), SeqT(F32), SeqT(ST((("t", I32), ("n", F32)))),
    clients(I32), clients(F32), clients(ST((("k", F32), ("j", I32)))), clients(V2),
    clients(SeqT(I32)), clients(SeqT(ST((("t", I32), ("a", F32))))),
    server(I32), server(F32), clients_eq(F32), clients_eq(I32),
]
# float32[?]: one length per case (client values and sequence elements of equal length);
# in about a third of the cases (G.unknown), for about one parameter in two.
UNKNOWN_PARAM_TYPES = [VU, SeqT(VU), clients(VU), server(VU), SeqT(ST((("in", VU), ("t", I32)))),
                       clients(SeqT(VU))]


@dataclasses.dataclass
class Scope:
    vars: dict           # visible name -> type (later bindings shadow earlier ones)
    fed_ok: bool         # federated values and intrinsics allowed here

    def bind(self, name, t):
        v = dict(self.vars)
        v.pop(name, None)
        v[name] = t
        return Scope(v, self.fed_ok)

    def unplaced(self):
        return Scope({n: t for n, t in self.vars.items() if not A.has_fed(t)}, False)


def is_numeric(t):
    leaves = A.tensor_leaves(t)
    return bool(leaves)


def is_float(t):
    leaves = A.tensor_leaves(t)
    return bool(leaves) and all(x.dtype == "float32" for x in leaves)


class G:
    def __init__(self, draw, traced=False):
        self.draw = draw
        self.traced = traced   # the program will also be traced from Python
        self.vlen = draw(st.integers(0, 3))  # the length of every float32[?] value
        self.unknown = self.flag(35)  # float32[?] values in this case

    # choices -------------------------------------------------------------------------------

    def pick(self, options):
        """options: [(weight, thunk)], the simplest first (Hypothesis shrinks towards it)."""
        options = [(w, f) for w, f in options if w > 0]
        total = sum(w for w, _ in options)
        k = self.draw(st.integers(0, total - 1))
        for w, f in options:
            if k < w:
                return f()
            k -= w
        raise AssertionError

    def one_of(self, items):
        return items[self.draw(st.integers(0, len(items) - 1))]

    def flag(self, p_percent):
        return self.draw(st.integers(0, 99)) < p_percent

    # paths (variables and selections into unplaced structs) ---------------------------------

    def paths(self, scope):
        out = []

        def visit(expr, t, depth):
            out.append((expr, t))
            if isinstance(t, ST) and depth < 2:
                for i, (n, et) in enumerate(t.elements):
                    if n is not None and self.flag(50):
                        visit(A.SelName(expr, n, et), et, depth + 1)
                    else:
                        visit(A.SelIdx(expr, i, et), et, depth + 1)
        for name, t in scope.vars.items():
            visit(A.Var(name, t), t, 0)
        return out

    def paths_of(self, scope, pred):
        return [(e, t) for e, t in self.paths(scope) if pred(t)]

    # types ---------------------------------------------------------------------------------

    def data_type(self, scope, allow_seq=True, depth=0):
        """A random unplaced data type; sequences only where the scope holds one."""
        seqs = [t for _, t in self.paths(scope) if isinstance(t, SeqT)] if allow_seq else []
        options = [(4, lambda: I32), (4, lambda: F32), (1, lambda: V2),
                   (2 if self.unknown else 0, lambda: VU)]
        if depth < 1:
            options.append((2, lambda: self.struct_type(scope, depth)))
        if seqs:
            options.append((1, lambda: self.one_of(seqs)))
        return self.pick(options)

    def struct_type(self, scope, depth):
        count = self.draw(st.integers(1, 3))
        types = [self.data_type(scope, allow_seq=False, depth=depth + 1) for _ in range(count)]
        if self.flag(70):
            pool = FIELD_NAMES + ODD_FIELDS if self.flag(50) else FIELD_NAMES
            names = self.draw(st.permutations(pool))[:count]
            return ST(tuple(zip(names, types)))
        return ST(tuple((None, t) for t in types))

    def any_type(self, scope):
        if not scope.fed_ok:
            return self.data_type(scope)
        member = lambda: self.data_type(scope.unplaced(), allow_seq=False)  # noqa: E731
        return self.pick([(3, lambda: self.data_type(scope)),
                          (2, lambda: server(member())),
                          (2, lambda: clients(member())),
                          (1, lambda: clients_eq(member()))])

    # expressions ---------------------------------------------------------------------------

    def gen(self, t, scope, d):
        options = []
        matching = self.paths_of(scope, lambda pt: A.assignable(t, pt))
        exact = [p for p in matching if p[1] == t]
        looser = [p for p in matching if p[1] != t]
        if exact:
            options.append((6, lambda: self.one_of(exact)[0]))
        if looser:  # T@CLIENTS where {T}@CLIENTS is expected
            options.append((1, lambda: self.one_of(looser)[0]))
        options += self.constructions(t, scope, d)
        if d > 0:
            options.append((2, lambda: self.let(t, scope, d)))
            options.append((1, lambda: self.immediate_call(t, scope, d)))
            fns = self.paths_of(scope, lambda pt: isinstance(pt, FnT) and pt.result == t)
            if fns:
                options.append((3, lambda: self.call_fn_path(self.one_of(fns), scope, d)))
            if not isinstance(t, (FedT, FnT)) and not A.has_fn(t) and not A.has_fed(t) and \
                    not A.has_seq(t) and self.seq_sources(scope):
                options.append((2, lambda: self.sequence_reduce(t, scope, d)))
        if not options:  # rare: the scope lost every sequence (an unpacked parameter)
            reject()
        return self.pick(options)

    def constructions(self, t, scope, d):
        g = self.gen
        sub = max(d - 1, 0)
        if isinstance(t, TT):
            options = [(3, lambda: self.literal(t))]
            if d == 0:
                return options
            if t == I32:
                options += [
                    (2, lambda: self.leaf_call("add", [g(I32, scope, sub), g(I32, scope, sub)])),
                    (2, lambda: self.leaf_call("sub", [g(I32, scope, sub), g(I32, scope, sub)])),
                    (1, lambda: self.leaf_call("double", g(I32, scope, sub))),
                    (1, lambda: self.split_select(scope, sub)),
                ]
                if self.seq_sources(scope, SeqT(I32)):
                    options.append((1, lambda: self.leaf_call(
                        "seq_total", self.gen_seq(SeqT(I32), scope, sub))))
            elif t == F32:
                options += [
                    (2, lambda: self.leaf_call("add_f", [g(F32, scope, sub), g(F32, scope, sub)])),
                    (2, lambda: self.leaf_call("sub_f", [g(F32, scope, sub), g(F32, scope, sub)])),
                    (1, lambda: self.leaf_call("double_f", g(F32, scope, sub))),
                    (1, lambda: self.leaf_call("to_float", g(I32, scope, sub))),
                    (1, lambda: self.leaf_call("pos_f", g(F32, scope, sub))),
                    (1, lambda: A.Call(A.Leaf("one_f", leaf_type("one_f")), None, F32)),
                    (1, lambda: self.leaf_call("sum_u", g(VU, scope, sub))),
                ]
            elif t == V2:
                options.append((2, lambda: self.leaf_call("scale_v", g(V2, scope, sub))))
            elif t == VU:
                options.append((2, lambda: self.leaf_call("scale_u", g(VU, scope, sub))))
            sources = self.seq_sources(scope)
            if sources:  # a sequence of t in scope, or a sequence_map of any sequence
                w = 2 if any(st_.element == t for st_ in sources) else 1
                w *= 3 if A.has_unknown(t) else 1  # elements of one unknown length
                options.append((w, lambda: A.Intr(
                    "sequence_sum", self.gen_seq(SeqT(t), scope, sub), t)))
            return options
        if isinstance(t, ST):
            def struct():
                return A.Struct([(n, g(et, scope, sub)) for n, et in t.elements], t)
            options = [(3, struct)]
            if d > 0 and not (A.has_fed(t) or A.has_fn(t) or A.has_seq(t)) and \
                    is_numeric(t) and self.seq_sources(scope):
                options.append((1, lambda: A.Intr(
                    "sequence_sum", self.gen_seq(SeqT(t), scope, sub), t)))
            if d > 0 and self.flag(15):
                # a selection out of a wider struct literal
                extra = self.literal(I32)
                if all(n is not None for n in t.names) and "z" not in t.names:
                    outer = ST((("z", I32), ("w", t)))
                    options.append((1, lambda: A.SelName(
                        A.Struct([("z", extra), ("w", struct())], outer), "w", t)))
                else:
                    outer = ST(((None, I32), (None, t)))
                    options.append((1, lambda: A.SelIdx(
                        A.Struct([(None, extra), (None, struct())], outer), 1, t)))
            return options
        if isinstance(t, SeqT):
            if self.seq_sources(scope):
                return [(3, lambda: self.gen_seq(t, scope, sub))]
            return []
        if isinstance(t, FnT):
            options = [(3, lambda: self.lambda_(t, scope, sub))]
            leaves = [n for n in LEAVES if leaf_type(n) == t]
            if leaves:
                options.append((3, lambda: A.Leaf(self.one_of(leaves), t)))
            return options
        if isinstance(t, FedT):
            return self.federated(t, scope, d)
        raise TypeError(t)

    def literal(self, t):
        if t == V2:
            return A.Lit([float(self.draw(st.integers(-3, 3))) for _ in range(2)], t)
        if t == VU:  # no literal has an unknown dimension: a float32[vlen] one given to ident_u
            lit = A.Lit([float(self.draw(st.integers(-3, 3))) for _ in range(self.vlen)],
                        TT("float32", (self.vlen,)))
            return A.Call(A.Leaf("ident_u", leaf_type("ident_u")), lit, VU)
        v = self.draw(st.integers(-3, 4))
        return A.Lit(float(v) if t.dtype == "float32" else v, t)

    def leaf_call(self, name, args):
        p, r, _ = LEAVES[name]
        if isinstance(args, list):
            # a struct literal argument, named as the leaf's parameters or unnamed
            names = p.names if self.flag(50) else [None] * len(args)
            arg = A.Struct(list(zip(names, args)), ST(tuple((n, a.t) for n, a in
                                                            zip(names, args))))
        else:
            arg = args
        return A.Call(A.Leaf(name, leaf_type(name)), arg, r)

    def split_select(self, scope, d):
        r = LEAVES["split"][1]
        call = self.leaf_call("split", self.gen(I32, scope, d))
        if self.flag(50):
            name = self.one_of(["hi", "lo"])
            return A.SelName(call, name, I32)
        return A.SelIdx(call, self.draw(st.integers(0, 1)), r.types[0])

    # lambdas, lets, calls ------------------------------------------------------------------

    def var_name(self):
        return self.one_of(ODD_VARS) if self.flag(30) else self.one_of(PLAIN_VARS)

    def fresh_or_reused(self, scope, keep_visible=False):
        """A binder name: often one already visible, so it shadows (not when the body still
        needs the visible names: a sequence must come from one)."""
        if keep_visible:
            name = self.var_name()
            if name not in scope.vars:
                return name
            free = [n for n in VAR_NAMES if n not in scope.vars]
            return self.one_of(free) if free else "_fresh%d" % len(scope.vars)
        return self.var_name()

    def lambda_(self, t, scope, d):
        inner = scope if A.has_fed(t) else scope.unplaced()
        traced_as = "decorated" if self.flag(70) else "plain"
        if t.param is None:
            return A.Lambda(None, None, self.gen(t.result, inner, d), t, traced_as=traced_as)
        p = t.param
        unpack = (isinstance(p, ST) and len(p.elements) >= 2 and p.all_named()
                  and len(set(p.names)) == len(p.names) and self.flag(40)
                  # traced: the names become Python parameters
                  and (not self.traced or all(A.py_name_ok(n) for n in p.names)))
        if unpack:
            body_scope = inner
            for n, et in p.elements:
                body_scope = body_scope.bind(n, et)
            order = list(p.names)
            if self.flag(50):
                order = self.draw(st.permutations(order))
            body = self.gen(t.result, body_scope, d)
            return A.Lambda(None, p, body, t, unpack=True, traced_as=traced_as,
                            py_order=list(order))
        keep = A.has_seq(t.result)
        name = self.fresh_or_reused(scope, keep_visible=keep)
        if isinstance(p, FedT) and self.flag(30):
            named = self.one_of(INTRINSIC_NAMED[p.placement])
            if not (keep and named in scope.vars):
                name = named
        body = self.gen(t.result, inner.bind(name, p), d)
        return A.Lambda(name, p, body, t, traced_as=traced_as)

    def let(self, t, scope, d):
        bindings = []
        inner = scope
        visible = [n for n in scope.vars if not isinstance(scope.vars[n], FnT)]
        keep = A.has_seq(t)
        if visible and not keep and self.flag(35):
            # `(let b=x, x=<other> in ...)`: keep the old x under a new name, rebind x
            old = self.one_of(visible)
            keep = self.var_name()
            if keep == old:
                keep = self.one_of([n for n in VAR_NAMES if n != old])
            bindings.append((keep, A.Var(old, scope.vars[old])))
            inner = inner.bind(keep, scope.vars[old])
            nt = self.any_type(inner)
            bindings.append((old, self.gen(nt, inner, d - 1)))
            inner = inner.bind(old, nt)
        for _ in range(self.draw(st.integers(0 if bindings else 1, 2))):
            name = self.fresh_or_reused(inner, keep_visible=keep)
            if self.flag(20):
                nt = FnT(self.data_type(inner.unplaced()), self.data_type(inner.unplaced(),
                                                                          allow_seq=False))
            else:
                nt = self.any_type(inner)
            bindings.append((name, self.gen(nt, inner, d - 1)))
            inner = inner.bind(name, nt)
        body = self.gen(t, inner, d - 1)
        return A.Let(bindings, body, t)

    def immediate_call(self, t, scope, d):
        pt = self.any_type(scope) if A.has_fed(t) else self.data_type(scope.unplaced())
        ft = FnT(pt, t)
        fn = self.lambda_(ft, scope, d - 1)
        return A.Call(fn, self.gen(pt, scope, d - 1), t)

    def call_fn_path(self, path, scope, d):
        fn, ft = path
        if ft.param is None:
            return A.Call(fn, None, ft.result)
        return A.Call(fn, self.gen(ft.param, scope, max(d - 1, 0)), ft.result)

    # sequences -----------------------------------------------------------------------------

    def seq_sources(self, scope, exact=None):
        return [t for _, t in self.paths(scope.unplaced())
                if isinstance(t, SeqT) and (exact is None or t == exact)]

    def gen_seq(self, t, scope, d):
        """An unplaced sequence of type t: a sequence in scope, or a sequence_map of one."""
        sources = self.paths_of(scope.unplaced(), lambda pt: isinstance(pt, SeqT))
        exact = [p for p in sources if p[1] == t]
        options = []
        if exact:
            options.append((3, lambda: self.one_of(exact)[0]))
        if sources and d >= 0:
            def smap():
                src, st_ = self.one_of(sources)
                fn = self.gen(FnT(st_.element, t.element), scope, max(d - 1, 0))
                return A.Intr("sequence_map", A.Struct([(None, fn), (None, src)],
                                                       ST(((None, fn.t), (None, st_)))), t)
            options.append((2, smap))
        return self.pick(options)

    def sequence_reduce(self, t, scope, d):
        sources = self.paths_of(scope.unplaced(), lambda pt: isinstance(pt, SeqT))
        src, st_ = self.one_of(sources)
        if self.flag(30):
            src = self.gen_seq(st_, scope, d - 1)
        zero = self.gen(t, scope.unplaced(), 0)
        op_t = FnT(ST(((None, t), (None, st_.element))), t)
        op = self.lambda_(op_t, scope, d - 1) if self.flag(85) else self.gen(op_t, scope, d - 1)
        arg_t = ST(((None, st_), (None, t), (None, op_t)))
        return A.Intr("sequence_reduce", A.Struct([(None, src), (None, zero), (None, op)],
                                                  arg_t), t)

    # federated -----------------------------------------------------------------------------

    def federated(self, t, scope, d):
        if not scope.fed_ok:
            return []
        m = t.member
        un = scope.unplaced()
        sub = max(d - 1, 0)
        g = self.gen
        pair = lambda a, b: A.Struct([(None, a), (None, b)], ST(((None, a.t), (None, b.t))))  # noqa

        def own(name, want):
            """A parameter or local named like the intrinsic `name`, of a type it takes."""
            vt = scope.vars.get(name)
            return A.Var(name, vt) if vt is not None and want(vt) else None
        fed = lambda p, u=None: lambda vt: (  # noqa: E731
            isinstance(vt, FedT) and vt.placement == p and not A.has_fn(vt.member) and
            (u is None or A.assignable(FedT(u, p, False), vt)) and
            (p != "SERVER" or not A.has_seq(vt.member)))

        if t.placement == "CLIENTS" and t.all_equal:
            if A.has_seq(m):
                return []
            options = [(3, lambda: A.Intr("federated_broadcast", g(server(m), scope, sub), t)),
                       (1, lambda: A.Intr("federated_value_at_clients", g(m, un, sub), t))]
            v = own("federated_broadcast", fed("SERVER", m))
            if v is not None:
                options.append((6, lambda v=v: A.Intr("federated_broadcast", v, t)))
            return options

        if t.placement == "CLIENTS":
            options = []
            v = own("federated_map", fed("CLIENTS"))
            if v is not None and not A.has_seq(m):
                def own_map(v=v):
                    fn = g(FnT(v.t.member, m), scope, sub)
                    return A.Intr("federated_map", pair(fn, v), t)
                options.append((6, own_map))
            if not A.has_seq(m) or self.fed_seq_sources(scope):
                options.append((4, lambda: self.fed_map(t, scope, d)))
            if not A.has_seq(m):
                options.append((1, lambda: A.Intr(
                    "federated_eval_at_clients", self.lambda_(FnT(None, m), scope, sub), t)))
            if isinstance(m, ST) and not A.has_seq(m) and d > 0:
                def zipc():
                    parts = [(n, g(clients(et), scope, sub)) for n, et in m.elements]
                    return A.Intr("federated_zip_at_clients",
                                  A.Struct(parts, ST(tuple((n, x.t) for n, x in parts))), t)
                options.append((1, zipc))
            return options

        # SERVER
        if A.has_seq(m):
            return []
        options = [(1, lambda: A.Intr("federated_value_at_server", g(m, un, sub), t))]
        if d == 0:
            return options
        options.append((1, lambda: A.Intr("federated_eval_at_server",
                                          self.lambda_(FnT(None, m), scope, sub), t)))

        def apply():
            u = self.data_type(un, allow_seq=False)
            fn = g(FnT(u, m), scope, sub)
            return A.Intr("federated_apply", pair(fn, g(server(u), scope, sub)), t)
        options.append((2, apply))
        if isinstance(m, ST):
            def zips():
                parts = [(n, g(server(et), scope, sub)) for n, et in m.elements]
                return A.Intr("federated_zip_at_server",
                              A.Struct(parts, ST(tuple((n, x.t) for n, x in parts))), t)
            options.append((3, zips))
        v = own("federated_apply", fed("SERVER"))
        if v is not None:
            options.append((6, lambda v=v: A.Intr("federated_apply", pair(
                g(FnT(v.t.member, m), scope, sub), v), t)))
        for name, ok in (("federated_sum", is_numeric(m)), ("federated_mean", is_float(m))):
            v = own(name, fed("CLIENTS", m))
            if ok and v is not None:
                options.append((6, lambda name=name, v=v: A.Intr(name, v, t)))
        if is_numeric(m):
            options += [
                (2, lambda: A.Intr("federated_sum", g(clients(m), scope, sub), t)),
                (1, lambda: A.Intr("federated_min", g(clients(m), scope, sub), t)),
                (1, lambda: A.Intr("federated_max", g(clients(m), scope, sub), t)),
                (2, lambda: self.aggregate(t, scope, d)),
            ]
        if is_float(m):
            options += [
                (2, lambda: A.Intr("federated_mean", g(clients(m), scope, sub), t)),
                (1, lambda: A.Intr("federated_weighted_mean",
                                   pair(g(clients(m), scope, sub), self.weight(scope, sub)), t)),
            ]
        if m == I32:
            def secure():
                value = self.clipped(scope, sub)
                if self.flag(50):
                    return A.Intr("federated_secure_sum",
                                  pair(value, A.Lit(self.draw(st.integers(7, 9)), I32)), t)
                return A.Intr("federated_secure_sum_bitwidth", pair(value, A.Lit(3, I32)), t)
            options.append((2, secure))
        return options

    def fed_seq_sources(self, scope):
        return self.paths_of(scope, lambda pt: isinstance(pt, FedT) and
                             pt.placement == "CLIENTS" and isinstance(pt.member, SeqT))

    def fed_map(self, t, scope, d):
        sub = max(d - 1, 0)
        seq_sources = self.fed_seq_sources(scope)
        if A.has_seq(t.member) or (seq_sources and self.flag(40)):
            src, srct = self.one_of(seq_sources)
            u = srct.member
        else:
            u = self.data_type(scope.unplaced(), allow_seq=False)
            srct = clients_eq(u) if self.flag(20) else clients(u)
            src = self.gen(srct, scope, sub)
        fn = self.gen(FnT(u, t.member), scope, sub)
        return A.Intr("federated_map", A.Struct([(None, fn), (None, src)],
                                                ST(((None, fn.t), (None, srct)))), t)

    def clipped(self, scope, d):
        value = self.gen(clients(I32), scope, d)
        fn = A.Leaf("clip", leaf_type("clip"))
        return A.Intr("federated_map", A.Struct([(None, fn), (None, value)],
                                                ST(((None, fn.t), (None, value.t)))),
                      clients(I32))

    def weight(self, scope, d):
        if self.flag(70):
            fn = A.Leaf("pos_f", leaf_type("pos_f"))
            value = self.gen(clients(F32), scope, d)
        else:  # an int32 weight: clip(q) + 1
            q = A.Var("q", I32)
            body = A.Call(A.Leaf("add", leaf_type("add")), A.Struct(
                [(None, A.Call(A.Leaf("clip", leaf_type("clip")), q, I32)),
                 (None, A.Lit(1, I32))], ST(((None, I32), (None, I32)))), I32)
            fn = A.Lambda("q", I32, body, FnT(I32, I32))
            value = self.gen(clients(I32), scope, d)
        return A.Intr("federated_map", A.Struct([(None, fn), (None, value)],
                                                ST(((None, fn.t), (None, value.t)))),
                      clients(fn.t.result))

    def aggregate(self, t, scope, d):
        """federated_aggregate with an additive merge (zero is its identity) and an accumulate
        of the form merge(acc, g(value)), so any split of the clients gives one result."""
        sub = max(d - 1, 0)
        un = scope.unplaced()
        vt = self.data_type(un, allow_seq=False)
        value = self.gen(clients(vt), scope, sub)
        ut = self.one_of([I32, F32, ST((("n", I32), ("t", F32)))])
        zero = _zero(ut)
        # g: vt -> ut, a generated function (may close over unplaced outer values)
        gfn = self.gen(FnT(vt, ut), un, sub)  # inside accumulate: no federated captures
        pair_t = ST(((None, ut), (None, vt)))
        p = A.Var("p", pair_t)
        acc_body = _add(A.SelIdx(p, 0, ut),
                        A.Call(gfn, A.SelIdx(p, 1, vt), ut), ut)
        accumulate = A.Lambda("p", pair_t, acc_body, FnT(pair_t, ut))
        uu = ST(((None, ut), (None, ut)))
        q = A.Var("q", uu)
        merge = A.Lambda("q", uu, _add(A.SelIdx(q, 0, ut), A.SelIdx(q, 1, ut), ut), FnT(uu, ut))
        report = self.gen(FnT(ut, t.member), scope, sub)
        parts = [value, zero, accumulate, merge, report]
        return A.Intr("federated_aggregate", A.Struct(
            [(None, x) for x in parts], ST(tuple((None, x.t) for x in parts))), t)


def _zero(t):
    if isinstance(t, TT):
        return A.Lit(0.0 if t.dtype == "float32" else 0, t)
    return A.Struct([(n, _zero(e)) for n, e in t.elements], t)


def _add(a, b, t):
    if isinstance(t, TT):
        leaf = "add" if t == I32 else "add_f"
        return A.Call(A.Leaf(leaf, leaf_type(leaf)), A.Struct(
            [(None, a), (None, b)], ST(((None, t), (None, t)))), t)
    return A.Struct([(n, _add(A.SelIdx(a, i, e), A.SelIdx(b, i, e), e))
                     for i, (n, e) in enumerate(t.elements)], t)


# Programs and their arguments ----------------------------------------------------------------

@dataclasses.dataclass
class Case:
    program: A.Lambda
    num_clients: int
    arg: object          # the oracle's argument value (None without a parameter)
    form_seed: int       # picks the Python forms of the argument (lists, datasets, dicts)
    vlen: int = 2        # the length of every float32[?] value

    @property
    def text(self):
        return A.to_text(self.program)


def value_of(draw, t, n, vlen=2, min_seq=0):
    """A random oracle value of type t (n clients; float32[?] values of length vlen; sequences
    of at least min_seq elements)."""
    def v(t):
        return value_of(draw, t, n, vlen, min_seq)
    if isinstance(t, TT):
        import numpy as np
        if t.shape:
            k = vlen if t.shape == ("?",) else t.shape[0]
            return np.asarray([draw(st.integers(-4, 4)) for _ in range(k)], np.float32)
        return np.dtype(t.dtype).type(draw(st.integers(-4, 5)))
    if isinstance(t, ST):
        return OStruct([(name, v(e)) for name, e in t.elements])
    if isinstance(t, SeqT):
        return [v(t.element) for _ in range(draw(st.integers(min_seq, 3)))]
    if isinstance(t, FedT):
        from differential.dt_oracle import Fed
        if t.placement == "CLIENTS" and not t.all_equal:
            return Fed("CLIENTS", False, [v(t.member) for _ in range(n)])
        return Fed(t.placement, True, v(t.member))
    raise TypeError(t)


def param_names(g, ptypes):
    """Distinct struct element names for the top-level parameters (plain identifiers, often
    keywords or named like an intrinsic; Python-valid when traced, where they may be unpacked
    into Python parameters)."""
    pool = PLAIN_VARS + [n for n in ODD_VARS + ODD_FIELDS if A.struct_name_ok(n)]
    names = []
    for t in ptypes:
        name = None
        if isinstance(t, FedT) and g.flag(30):
            name = g.one_of(INTRINSIC_NAMED[t.placement])
        elif g.flag(25):
            name = g.one_of(pool)
        if name is None or name in names:
            name = g.one_of([n for n in PLAIN_VARS if n not in names])
        names.append(name)
    return names


@st.composite
def cases(draw, traced=False, max_depth=3):
    g = G(draw, traced=traced)
    n = draw(st.integers(1, 4))
    count = draw(st.integers(1, 4))
    ptypes = [draw(st.sampled_from(UNKNOWN_PARAM_TYPES if g.unknown and g.flag(50)
                                   else PARAM_TYPES)) for _ in range(count)]
    names = param_names(g, ptypes)
    if count == 1 and g.flag(40):
        ptype = ptypes[0]
    else:
        ptype = ST(tuple(zip(names, ptypes)))
    scope = Scope({}, True)
    rtypes = [g.any_type(scope.bind("_p", ptype)) for _ in range(draw(st.integers(1, 3)))]
    # Results that invite the body to use a parameter named like an intrinsic with that
    # intrinsic, and to aggregate values of unknown dimensions.
    for name, t in zip(names, ptypes):
        # a result of a sequence's element type: its sum or reduction (float32[?] elements
        # of one length)
        if isinstance(t, SeqT) and g.flag(70 if A.has_unknown(t) else 40):
            rtypes.append(t.element)
        elif isinstance(t, FedT) and isinstance(t.member, SeqT) and A.has_unknown(t) and \
                g.flag(60):
            rtypes.append(clients(t.member.element))
        if not isinstance(t, FedT) or A.has_seq(t.member) or not g.flag(60):
            continue
        if name == "federated_broadcast" and t.placement == "SERVER":
            rtypes.append(clients_eq(t.member))
        elif name in ("federated_sum", "federated_mean") and t.placement == "CLIENTS" and \
                is_float(t.member):
            rtypes.append(server(t.member))
    if A.has_unknown(ptype) and g.flag(50):
        rtypes.append(g.one_of([server(VU), VU, clients(VU)]))
    rtype = rtypes[0] if len(rtypes) == 1 else ST(tuple((None, t) for t in rtypes))
    program = A.retype(g.lambda_(FnT(ptype, rtype), scope, max_depth))
    # The zero of float32[?] is unknown: summing an empty sequence of it is an error (by
    # design), so sequences are not empty where a program sums one.
    min_seq = int(any(isinstance(x, A.Intr) and x.name == "sequence_sum" and
                      A.has_unknown(x.t) for x in A.walk(program)))
    arg = value_of(draw, ptype, n, g.vlen, min_seq)
    return Case(program, n, arg, draw(st.integers(0, 2 ** 16)), g.vlen)
