"""The same AST as Python code traced by `fcore.federated_computation`: nested decorated
computations and plain Python functions given to intrinsics, closing over the enclosing
functions' parameters and locals; struct arguments passed by keyword in shuffled orders.

`python_source(program, rng)` gives the source (kept for failure messages); `build` runs it
and returns the traced top-level computation."""

from __future__ import annotations

import collections
import keyword
import random

import numpy as np

from differential import dt_ast as A
from differential.dt_ast import ST


def _sel(value, name):
    if isinstance(value, collections.abc.Mapping):
        return value[name]
    return getattr(value, name)


def _idx(value, index):
    if isinstance(value, collections.abc.Mapping):
        return list(value.values())[index]
    return value[index]


MULTI_ARGUMENT = {"federated_map", "federated_apply", "federated_weighted_mean",
                  "federated_aggregate", "federated_secure_sum", "federated_secure_sum_bitwidth",
                  "sequence_map", "sequence_reduce"}


class Emitter:
    def __init__(self, rng):
        self.rng = rng
        self.types = []     # fcore types, by text, for decorators: T[i]
        self.count = 0

    def fresh(self, base):
        self.count += 1
        base = base if base.isidentifier() and not keyword.iskeyword(base) else "v"
        return f"{base}_{self.count}"

    def type_ref(self, t):
        text = str(t)
        if text not in self.types:
            self.types.append(text)
        return f"T[{self.types.index(text)}]"

    # functions -----------------------------------------------------------------------------

    def function(self, lam, name, env, out, indent, plain_ok=False):
        """Appends the lines defining `lam` as the Python function `name` to `out`."""
        pad = " " * indent
        plain = plain_ok and lam.traced_as == "plain"
        if not plain:
            if lam.ptype is None:
                out.append(f"{pad}@fcore.federated_computation()")
            else:
                out.append(f"{pad}@fcore.federated_computation({self.type_ref(lam.ptype)})")
        env = dict(env)
        if lam.ptype is None:
            params = []
        elif lam.unpack:
            params = list(lam.py_order)
            for n in lam.ptype.names:
                env[n] = n
        else:
            # the AST's name where Python allows it (`nan`, `true`, `dépôt`,
            # `federated_broadcast`), else a fresh one (`in`, "a`b")
            py = lam.param if A.py_name_ok(lam.param) else self.fresh(lam.param)
            params = [py]
            env[lam.param] = py
        out.append(f"{pad}def {name}({', '.join(params)}):")
        body = []
        result = self.expr(lam.body, env, body, indent + 4)
        out.extend(body)
        out.append(f"{pad}    return {result}")

    # expressions ---------------------------------------------------------------------------

    def expr(self, e, env, out, indent, plain_ok=False):
        """The Python expression for `e`; statements it needs first are appended to out."""
        if isinstance(e, A.Var):
            return env[e.name]
        if isinstance(e, A.Lit):
            if e.t.shape:
                return f"np.array({list(map(float, e.value))!r}, np.float32)"
            return repr(float(e.value)) if e.t.dtype == "float32" else repr(int(e.value))
        if isinstance(e, A.Struct):
            parts = [(n, self.expr(x, env, out, indent)) for n, x in e.elements]
            if parts and all(n is not None for n, _ in parts):
                return "OrderedDict([" + ", ".join(f"({n!r}, {v})" for n, v in parts) + "])"
            return "(" + "".join(f"{v}, " for _, v in parts) + ")"
        if isinstance(e, A.SelName):
            return f"_sel({self.expr(e.source, env, out, indent)}, {e.name!r})"
        if isinstance(e, A.SelIdx):
            return f"_idx({self.expr(e.source, env, out, indent)}, {e.index})"
        if isinstance(e, A.Lambda):
            name = self.fresh("fn" if e.ptype is None or e.unpack else "step")
            self.function(e, name, env, out, indent, plain_ok=plain_ok)
            return name
        if isinstance(e, A.Let):
            env = dict(env)
            for n, x in e.bindings:
                value = self.expr(x, env, out, indent)
                py = self.fresh(n)
                out.append(" " * indent + f"{py} = {value}")
                env[n] = py
            return self.expr(e.body, env, out, indent)
        if isinstance(e, A.Leaf):
            return f"L.{e.name}"
        if isinstance(e, A.Call):
            return self.call(e, env, out, indent)
        if isinstance(e, A.Intr):
            return self.intrinsic(e, env, out, indent)
        raise TypeError(e)

    def call(self, e, env, out, indent):
        fn_expr = e.fn
        fn = self.expr(fn_expr, env, out, indent, plain_ok=True)
        if e.arg is None:
            return f"{fn}()"
        ptype = fn_expr.t.param
        unpack = isinstance(fn_expr, A.Lambda) and fn_expr.unpack
        plain = isinstance(fn_expr, A.Lambda) and fn_expr.traced_as == "plain"
        if (unpack or not plain) and isinstance(e.arg, A.Struct) and isinstance(ptype, ST) and \
                len(e.arg.elements) == len(ptype.elements) and len(ptype.elements) > 1:
            values = [self.expr(x, env, out, indent) for _, x in e.arg.elements]
            names = ptype.names
            if (unpack or (isinstance(fn_expr, A.Leaf) and self.rng.random() < 0.5)) and \
                    ptype.all_named():
                pairs = list(zip(names, values))
                self.rng.shuffle(pairs)   # keywords in another order than the parameters
                return f"{fn}({', '.join(f'{n}={v}' for n, v in pairs)})"
            return f"{fn}({', '.join(values)})"
        arg = self.expr(e.arg, env, out, indent)
        if unpack:
            tmp = self.fresh("arg")
            out.append(" " * indent + f"{tmp} = {arg}")
            names = list(ptype.names)
            self.rng.shuffle(names)
            return f"{fn}({', '.join(f'{n}=_sel({tmp}, {n!r})' for n in names)})"
        return f"{fn}({arg})"

    def intrinsic(self, e, env, out, indent):
        name = e.name
        if name in MULTI_ARGUMENT:
            args = [self.expr(x, env, out, indent, plain_ok=True) for _, x in e.arg.elements]
        else:
            args = [self.expr(e.arg, env, out, indent, plain_ok=True)]
        simple = {"federated_broadcast", "federated_sum", "federated_mean", "federated_min",
                  "federated_max", "federated_aggregate", "federated_secure_sum",
                  "federated_secure_sum_bitwidth", "federated_map", "sequence_map",
                  "sequence_sum"}
        if name in simple:
            return f"fcore.{name}({', '.join(args)})"
        if name == "federated_apply":
            return f"fcore.federated_map({', '.join(args)})"
        if name == "federated_weighted_mean":
            return f"fcore.federated_mean({args[0]}, weight={args[1]})"
        if name.startswith("federated_value_at_"):
            return f"fcore.federated_value({args[0]}, fcore.{name.rsplit('_', 1)[1].upper()})"
        if name.startswith("federated_eval_at_"):
            return f"fcore.federated_eval({args[0]}, fcore.{name.rsplit('_', 1)[1].upper()})"
        if name.startswith("federated_zip_at_"):
            return f"fcore.federated_zip({args[0]})"
        if name == "sequence_reduce":
            return f"fcore.sequence_reduce({', '.join(args)})"
        raise ValueError(name)


def python_source(program, seed):
    em = Emitter(random.Random(seed))
    lines = []
    em.function(program, "program", {}, lines, 0)
    return "\n".join(lines), em.types


def build(program, seed, leaves):
    import fcore
    source, types = python_source(program, seed)
    namespace = {"fcore": fcore, "L": _Namespace(leaves), "OrderedDict": collections.OrderedDict,
                 "np": np, "_sel": _sel, "_idx": _idx,
                 "T": [fcore.parse_type(t) for t in types]}
    exec(compile(source, "<generated program>", "exec"), namespace)
    return namespace["program"], source


class _Namespace:
    def __init__(self, mapping):
        self.__dict__.update(mapping)
