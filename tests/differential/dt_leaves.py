"""The harness's fixed env of TF leaves, each with its NumPy twin for the oracle.

`LEAVES[name] = (type, numpy_fn)`; `env()` builds the fcore tf_computations (once)."""

from __future__ import annotations

import collections

import numpy as np

from differential.dt_ast import F32, I32, V2, VU, FnT, SeqT, ST

i32, f32 = np.int32, np.float32

# name: (parameter type, result type, numpy function of the oracle's argument value)
# Struct arguments reach the NumPy function as an oracle Struct (`.get(name)`, `[i]`).
LEAVES = {
    "add": (ST((("a", I32), ("b", I32))), I32, lambda s: i32(s[0] + s[1])),
    "add_f": (ST((("a", F32), ("b", F32))), F32, lambda s: f32(s[0] + s[1])),
    # named parameters, not commutative: binding them by position would show
    "sub": (ST((("x", I32), ("y", I32))), I32, lambda s: i32(s[0] - s[1])),
    "sub_f": (ST((("hi", F32), ("lo", F32))), F32, lambda s: f32(s[0] - s[1])),
    "double": (I32, I32, lambda x: i32(2 * x)),
    "double_f": (F32, F32, lambda x: f32(2 * x)),
    "to_float": (I32, F32, lambda x: f32(x)),
    "pos_f": (F32, F32, lambda x: f32(abs(x) + 1)),
    "clip": (I32, I32, lambda x: i32(min(max(x, 0), 7))),
    # a named result whose names are not sorted
    "split": (I32, ST((("hi", I32), ("lo", I32))), None),
    "scale_v": (V2, V2, lambda v: (np.asarray(v, f32) * f32(3)).astype(f32)),
    "seq_total": (SeqT(I32), I32, lambda s: i32(sum(int(x) for x in s))),
    "one_f": (None, F32, lambda: f32(1)),
    # float32[?]: a vector of known length passed where the length is unknown, and functions
    # of unknown-length vectors
    "ident_u": (VU, VU, lambda v: np.asarray(v, f32)),
    "scale_u": (VU, VU, lambda v: (np.asarray(v, f32) * f32(2)).astype(f32)),
    "sum_u": (VU, F32, lambda v: f32(np.sum(np.asarray(v, f32)))),
}


def leaf_type(name):
    p, r, _ = LEAVES[name]
    return FnT(p, r)


_ENV = None


def env():
    """name -> fcore tf_computation."""
    global _ENV
    if _ENV is not None:
        return _ENV
    import tensorflow as tf
    import fcore

    @fcore.tf_computation(np.int32, np.int32)
    def add(a, b):
        return a + b

    @fcore.tf_computation(np.float32, np.float32)
    def add_f(a, b):
        return a + b

    @fcore.tf_computation(np.int32, np.int32)
    def sub(x, y):
        return x - y

    @fcore.tf_computation(np.float32, np.float32)
    def sub_f(hi, lo):
        return hi - lo

    @fcore.tf_computation(np.int32)
    def double(x):
        return x * 2

    @fcore.tf_computation(np.float32)
    def double_f(x):
        return x * 2.0

    @fcore.tf_computation(np.int32)
    def to_float(x):
        return tf.cast(x, tf.float32)

    @fcore.tf_computation(np.float32)
    def pos_f(x):
        return tf.abs(x) + 1.0

    @fcore.tf_computation(np.int32)
    def clip(x):
        return tf.clip_by_value(x, 0, 7)

    @fcore.tf_computation(np.int32)
    def split(x):
        return collections.OrderedDict(hi=x + 1, lo=x - 1)

    @fcore.tf_computation(fcore.TensorType(np.float32, [2]))
    def scale_v(v):
        return v * 3.0

    @fcore.tf_computation(fcore.SequenceType(np.int32))
    def seq_total(ds):
        return ds.reduce(np.int32(0), lambda total, x: total + x)

    @fcore.tf_computation()
    def one_f():
        return tf.constant(1.0)

    unknown = fcore.TensorType(np.float32, [None])

    @fcore.tf_computation(unknown)
    def ident_u(v):
        return tf.identity(v)

    @fcore.tf_computation(unknown)
    def scale_u(v):
        return v * 2.0

    @fcore.tf_computation(unknown)
    def sum_u(v):
        return tf.reduce_sum(v)

    _ENV = {c.name: c for c in [add, add_f, sub, sub_f, double, double_f, to_float, pos_f,
                                clip, split, scale_v, seq_total, one_f, ident_u, scale_u,
                                sum_u]}
    assert set(_ENV) == set(LEAVES), set(_ENV) ^ set(LEAVES)
    return _ENV
