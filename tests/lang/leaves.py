"""TF leaves for the language tests: the computations that `@name` refers to in
`tests/lang/programs/*.fc`.

Each env key is the computation's own name, so the printed text of a program (where a leaf
prints as `@<its name>`) reads like its source.
"""

import collections

import numpy as np
import tensorflow as tf

import fcore

MEAN_STATE = fcore.StructType([("total", np.float32), ("count", np.int32)])


@fcore.tf_computation(np.int32)
def add_one(x):
    return x + 1


@fcore.tf_computation(np.int32, np.int32)
def add(a, b):
    return a + b


@fcore.tf_computation(np.float32, np.float32)
def add_f32(a, b):
    return a + b


@fcore.tf_computation(np.float32)
def square(x):
    return x * x


@fcore.tf_computation(np.float32)
def times_two(x):
    return x * 2.0


@fcore.tf_computation(fcore.TensorType(np.float32, [3]))
def double_vector(v):
    return v * 2.0


@fcore.tf_computation()
def forty_two():
    return tf.constant(42)


@fcore.tf_computation()
def one():
    return tf.constant(1.0)


@fcore.tf_computation(fcore.StructType([("a", np.int32), ("b", np.float32)]))
def cast_add(s):
    return tf.cast(s.a, tf.float32) + s.b


@fcore.tf_computation(fcore.SequenceType(np.int32))
def dataset_sum(ds):
    return ds.reduce(np.int32(0), lambda total, x: total + x)


@fcore.tf_computation(np.int32)
def hello(x):
    return "hello"


@fcore.tf_computation(np.int32)
def halves(x):
    """A result with names, returned as an OrderedDict: `(int32 -> <low=int32,high=int32>)`."""
    return collections.OrderedDict(low=x // 2, high=x - x // 2)


# A mean as a federated_aggregate: zero <total=0.0,count=0>, then accumulate, merge, report.

@fcore.tf_computation(MEAN_STATE, np.float32)
def accumulate(acc, v):
    return collections.OrderedDict(total=acc.total + v, count=acc.count + 1)


@fcore.tf_computation(MEAN_STATE, MEAN_STATE)
def merge(a, b):
    return collections.OrderedDict(total=a.total + b.total, count=a.count + b.count)


@fcore.tf_computation(MEAN_STATE)
def report(s):
    return s.total / tf.cast(s.count, tf.float32)


# A federated computation (not TF): used as an env entry, its body is inlined.

@fcore.federated_computation(np.int32)
def add_two(x):
    return add_one(add_one(x))


ENV = {c.name: c for c in [
    add_one, add, add_f32, square, times_two, double_vector, forty_two, one, cast_add,
    dataset_sum, hello, halves, accumulate, merge, report, add_two,
]}
