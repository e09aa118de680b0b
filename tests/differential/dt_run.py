"""Running a generated case on fcore and comparing with the oracle."""

from __future__ import annotations

import collections
import random

import numpy as np

from differential.dt_ast import FedT, FnT, SeqT, ST, TT, has_unknown
from differential.dt_oracle import Oracle


# Python forms of arguments ---------------------------------------------------------------------
# FORMS counts the forms made (test_argument_forms_mix_lists_and_datasets checks the mix).
FORMS = collections.Counter()

def python_value(t, v, rng, vlen=2):
    """The oracle value `v` of type `t` as a Python argument, in a form picked by `rng`
    (`vlen`: the length of float32[?] values, for an empty dataset's element shape)."""
    if isinstance(t, TT):
        if t.shape:
            return list(map(float, v)) if rng.random() < 0.5 else np.asarray(v, np.float32)
        if rng.random() < 0.6:
            return float(v) if t.dtype == "float32" else int(v)
        return np.dtype(t.dtype).type(v)
    if isinstance(t, ST):
        values = [python_value(e, x, rng, vlen) for e, (_, x) in zip(t.types, v.items)]
        if t.all_named() and rng.random() < 0.8:
            pairs = list(zip(t.names, values))
            rng.shuffle(pairs)  # key order differs from the type's order
            FORMS["struct as dict, keys not sorted"] += [n for n, _ in pairs] != sorted(t.names)
            return dict(pairs) if rng.random() < 0.5 else collections.OrderedDict(pairs)
        return tuple(values)
    if isinstance(t, SeqT):
        if rng.random() < 0.5:
            FORMS["sequence as tf.data.Dataset"] += 1
            return dataset(t, v, vlen, ragged=has_unknown(t) and rng.random() < 0.5)
        FORMS["sequence as list"] += 1
        return [python_value(t.element, x, rng, vlen) for x in v]
    if isinstance(t, FedT):
        if t.placement == "CLIENTS" and not t.all_equal:
            return [python_value(t.member, x, rng, vlen) for x in v.value]
        return python_value(t.member, v.value, rng, vlen)
    raise TypeError(t)


def dataset(t, items, vlen=2, ragged=False):
    """A tf.data.Dataset of the oracle sequence `items` (struct elements as OrderedDicts in
    the type's element order, which need not be sorted). float32[?] elements have a known
    length in the dataset's element spec, or with `ragged` an unknown one (`[None]`: sliced
    from a tf.RaggedTensor, then mapped to dense tensors)."""
    import tensorflow as tf
    e = t.element

    def column(et, values):
        if isinstance(et, TT):
            if ragged and "?" in et.shape:
                return tf.ragged.constant([list(map(float, v)) for v in values],
                                          dtype=tf.float32, ragged_rank=1)
            shape = tuple(vlen if k == "?" else k for k in et.shape)
            return np.asarray(values, np.dtype(et.dtype)).reshape((len(values),) + shape)
        cols = [(n, column(x, [v[i] for v in values])) for i, (n, x) in enumerate(et.elements)]
        if et.all_named():
            FORMS["dataset of OrderedDicts, keys not sorted"] += et.names != sorted(et.names)
            return collections.OrderedDict(cols)
        return tuple(c for _, c in cols)
    ds = tf.data.Dataset.from_tensor_slices(column(e, list(items)))
    if ragged:
        FORMS["dataset of float32[None] elements"] += 1
        ds = ds.map(lambda *x: x[0] if len(x) == 1 else x)
    return ds


def call_args(case, rng):
    """(args, kwargs) for calling the top-level computation."""
    t = case.program.ptype
    if t is None:
        return (), {}
    v = case.arg
    if isinstance(t, ST) and len(t.elements) > 1:
        r = rng.random()
        if r < 0.4:  # one positional argument per element
            return tuple(python_value(e, x, rng, case.vlen)
                         for e, (_, x) in zip(t.types, v.items)), {}
        if r < 0.5 and t.all_named():
            kwargs = {n: python_value(e, x, rng, case.vlen)
                      for (n, e), (_, x) in zip(t.elements, v.items)}
            items = list(kwargs.items())
            rng.shuffle(items)
            return (), dict(items)
    return (python_value(t, v, rng, case.vlen),), {}


# Comparing ---------------------------------------------------------------------------------------

class Mismatch(AssertionError):
    pass


def compare(actual, expected, t, n, path="result"):
    if isinstance(t, FnT):
        return
    if isinstance(t, FedT):
        if t.placement == "CLIENTS" and not t.all_equal:
            members = expected.members(n)
            _need(isinstance(actual, (list, tuple)) and len(actual) == len(members),
                  path, f"a list of {len(members)} client values", actual)
            for i, (a, e) in enumerate(zip(actual, members)):
                compare(a, e, t.member, n, f"{path}[client {i}]")
            return
        return compare(actual, expected.value, t.member, n, path)
    if isinstance(t, SeqT):
        if hasattr(actual, "as_numpy_iterator"):
            actual = list(actual.as_numpy_iterator())
        _need(isinstance(actual, list) and len(actual) == len(expected), path,
              f"a list of {len(expected)} elements", actual)
        for i, (a, e) in enumerate(zip(actual, expected)):
            compare(a, e, t.element, n, f"{path}[{i}]")
        return
    if isinstance(t, ST):
        if hasattr(actual, "items") and callable(actual.items):
            pairs = list(actual.items())
        elif isinstance(actual, (tuple, list)):
            pairs = [(None, x) for x in actual]
        else:
            raise Mismatch(f"{path}: expected a struct {t}, found {actual!r}")
        _need(len(pairs) == len(t.elements), path, f"{len(t.elements)} elements", actual)
        for i, ((an, a), (en, et)) in enumerate(zip(pairs, t.elements)):
            if an is not None and en is not None:
                _need(an == en, path, f"element {i} named {en!r}", actual)
            compare(a, expected[i], et, n, f"{path}.{en if en else i}")
        return
    if isinstance(t, TT):
        a = np.asarray(actual)
        e = np.asarray(expected)
        _need(a.shape == e.shape, path, f"shape {e.shape} ({expected!r})", actual)
        if t.dtype == "int32":
            _need(a.dtype.kind in "iu" and np.array_equal(a, e), path, repr(expected), actual)
        else:
            _need(a.dtype.kind == "f" and np.allclose(a, e, rtol=1e-4, atol=1e-3,
                                                      equal_nan=True),
                  path, repr(expected), actual)
        return
    raise TypeError(t)


def _need(ok, path, what, actual):
    if not ok:
        raise Mismatch(f"{path}: expected {what}, found {actual!r}")


# Running --------------------------------------------------------------------------------

def expected(case):
    return Oracle(case.num_clients, case.vlen).run(case.program, case.arg)


def case_args(case):
    """call_args for the case's form_seed, made once per case (the same forms, and the same
    tf.data.Datasets, for every executor and route)."""
    cached = getattr(case, "_args", None)
    if cached is None:
        cached = case._args = call_args(case, random.Random(case.form_seed))
    return cached


def run(comp, case, kind, dask=None):
    import fcore
    args, kwargs = case_args(case)
    if dask is not None:
        with fcore.execution_context(dask=dask, num_clients=case.num_clients):
            return comp(*args, **kwargs)
    with fcore.execution_context(kind, num_clients=case.num_clients):
        return comp(*args, **kwargs)


def check(comp, case, kind, want=None, dask=None, stage=""):
    """Runs `comp` on `kind` and compares with the oracle; raises Mismatch with details."""
    if want is None:
        want = expected(case)
    try:
        got = run(comp, case, kind, dask=dask)
    except Exception as e:  # a crash on a well-typed program is a finding too
        raise Mismatch(f"[{stage}{kind}] crashed: {type(e).__name__}: {e}\n"
                       f"program: {case.text}\nnum_clients={case.num_clients} "
                       f"arg={case.arg!r}") from e
    try:
        compare(got, want, case.program.t.result, case.num_clients)
    except Mismatch as e:
        raise Mismatch(f"[{stage}{kind}] {e}\nprogram: {case.text}\n"
                       f"num_clients={case.num_clients} arg={case.arg!r}\n"
                       f"oracle: {want!r}") from None
