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


def test_a_custom_round_with_two_leaves_and_a_broadcast_compiles():
    """A client update with `dataset.reduce`, then a second TF leaf (clipping) that also
    takes a broadcast value, then a weighted mean: compiled over groups of alike clients
    and over unequal ones, with the reference executor's results."""
    from fcore.execution import lowering
    weights_type = fcore.TensorType(np.float32, [2])
    batches = fcore.SequenceType(fcore.TensorType(np.float32, [None, 2]))

    @fcore.tf_computation(weights_type, batches)
    def client_update(weights, dataset):
        def step(state, batch):
            w, n = state
            return w - 0.1 * tf.reduce_mean(batch - w, 0), n + tf.cast(tf.shape(batch)[0],
                                                                        tf.float32)
        new, n = dataset.reduce((weights, tf.constant(0.0)), step)
        return new - weights, n

    @fcore.tf_computation(weights_type, np.float32)
    def clip(delta, norm):
        return tf.clip_by_norm(delta, norm)

    @fcore.federated_computation(fcore.FederatedType(weights_type, fcore.SERVER),
                                 fcore.FederatedType(batches, fcore.CLIENTS),
                                 fcore.FederatedType(np.float32, fcore.SERVER))
    def custom_round(weights, data, norm):
        outputs = fcore.federated_map(client_update,
                                      (fcore.federated_broadcast(weights), data))
        clipped = fcore.federated_map(clip, (outputs[0], fcore.federated_broadcast(norm)))
        return fcore.federated_mean(clipped, outputs[1])

    rng = np.random.default_rng(2)
    alike = [[rng.normal(size=(3, 2)).astype(np.float32) for _ in range(2)]
             for _ in range(lowering.MIN_GROUP + 1)]
    unequal = [[rng.normal(size=(n, 2)).astype(np.float32) for n in sizes]
               for sizes in ((1,), (2, 3), (4, 1, 2))]
    args = (np.array([0.5, -0.5], np.float32), alike + unequal, np.float32(0.05))
    with fcore.execution_context("reference"):
        expected = custom_round(*args)
    with fcore.execution_context("fast"):
        np.testing.assert_allclose(custom_round(*args), expected, rtol=1e-5, atol=1e-7)
    loops = lowering.compiled_loops(client_update.ir.computation)
    # the alike clients and (2, 3) (two batches of sizes up to 3) in one padded group; (1,)
    # and (4, 1, 2), too few for a looped loop, in the ragged loop
    assert sorted(type(loop).__name__ for loop in loops) == ["_GroupFunction",
                                                             "_RaggedFunction"]
