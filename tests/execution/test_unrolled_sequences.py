"""TF-style client code on the fast path: a leaf that uses its sequence as a
`tf.data.Dataset` (`reduce`, `map`, `take`, `skip`, `enumerate`, `cardinality`,
`element_spec`) runs unrolled over short sequences given as lists, with the results of the
reference executor (which runs a real dataset); what cannot unroll (`filter`, `batch`) runs
on a dataset."""

import collections

import numpy as np
import pytest
import tensorflow as tf

import fcore

ELEMENT = collections.OrderedDict(x=fcore.TensorType(np.float32, [2]),
                                  y=fcore.TensorType(np.int32))
SEQUENCE = fcore.SequenceType(ELEMENT)
CLIENTS = fcore.FederatedType(SEQUENCE, fcore.CLIENTS)


def fold(ds):
    return ds.reduce(tf.zeros([2]), lambda acc, e: acc + e["x"] * tf.cast(e["y"], tf.float32))


def mapped(ds):
    return ds.map(lambda e: e["x"] * 2.0).reduce(tf.zeros([2]), lambda a, x: a + x)


def windowed(ds):
    return ds.skip(1).take(2).reduce(tf.zeros([2]), lambda a, e: a + e["x"])


def numbered(ds):
    total = tf.zeros([2])
    for i, e in ds.enumerate():
        total += tf.cast(i, tf.float32) * e["x"]
    return total + tf.cast(ds.cardinality(), tf.float32)


def with_spec(ds):
    assert ds.element_spec["x"].shape == (2,)
    return ds.reduce(tf.zeros([2]), lambda a, e: a + e["x"])


def filtered(ds):  # cannot unroll: runs on a real dataset
    return ds.filter(lambda e: e["y"] > 1).reduce(tf.zeros([2]), lambda a, e: a + e["x"])


def client_data(seed):
    rng = np.random.default_rng(seed)
    return [[collections.OrderedDict(x=rng.normal(size=2).astype(np.float32),
                                     y=np.int32(rng.integers(0, 4))) for _ in range(n)]
            for n in (1, 4, 3)]


@pytest.mark.parametrize("body", [fold, mapped, windowed, numbered, with_spec, filtered])
def test_dataset_code_gives_the_reference_results(body):
    leaf = fcore.tf_computation(body, SEQUENCE)
    summed = fcore.federated_computation(
        lambda data: fcore.federated_sum(fcore.federated_map(leaf, data)), CLIENTS)
    data = client_data(0)
    with fcore.execution_context("reference"):
        expected = summed(data)
    with fcore.execution_context("fast"):
        np.testing.assert_allclose(summed(data), expected, rtol=1e-6, atol=1e-6)
    unrolled = leaf.ir.computation._unrolled
    assert any(v is not None for v in unrolled.values()) == (body is not filtered)
