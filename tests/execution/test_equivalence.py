"""Executor equivalence: custom algorithms with several TF leaves, `dataset.reduce`,
`sequence_reduce`, `federated_aggregate`, secure sums, per-client tensors and datasets of
unknown length give the same results on the reference, fast and Dask executors, at a few
clients (per-client path) and at many (compiled passes, chunks on workers)."""

import collections

import numpy as np
import pytest
import tensorflow as tf

import fcore
from fcore import CLIENTS, SERVER, FederatedType, SequenceType, TensorType

from support import local_cluster

pytest.importorskip("distributed")

W = TensorType(np.float32, [4])
BATCH = fcore.to_type(collections.OrderedDict(x=tf.TensorSpec([None, 4], tf.float32),
                                              y=tf.TensorSpec([None], tf.float32)))


@pytest.fixture(scope="module")
def client():
    yield from local_cluster()


def on_every_executor(client, computation, *arguments, shipped=True):
    """The results on the reference, fast and Dask executors; with `shipped`, a pass at 10 or
    more clients must run in chunks on the workers (not on the driver)."""
    from fcore.execution import distributed as fdist
    results = []
    with fcore.execution_context("reference"):
        results.append(computation(*arguments))
    with fcore.execution_context("fast"):
        results.append(computation(*arguments))
    fdist.last_report.clear()
    with fcore.execution_context(dask=client):
        results.append(computation(*arguments))
    if shipped and _clients(arguments) >= 10:
        assert fdist.last_report.get("chunks", 0) > 1, "the pass ran on the driver"
    return results


def _clients(arguments):
    return max((len(a) for a in arguments if isinstance(a, list)), default=0)


def assert_same(results):
    flat = [tf.nest.flatten(_plain(r)) for r in results]
    for other in flat[1:]:
        assert len(other) == len(flat[0])
        for a, b in zip(flat[0], other):
            np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                                       rtol=1e-5, atol=1e-6)


def _plain(value):
    if isinstance(value, (fcore.Struct, list, tuple)):
        return [_plain(v) for v in value]
    return np.asarray(value)


def batches(count, seed, sizes=(5, 5, 3)):
    rng = np.random.default_rng(seed)
    return [[collections.OrderedDict(x=rng.normal(size=(n, 4)).astype(np.float32),
                                     y=rng.normal(size=n).astype(np.float32))
             for n in sizes[:1 + i % len(sizes)]] for i in range(count)]


@fcore.tf_computation(W, SequenceType(BATCH))
def local_fit(w, dataset):
    """Linear regression steps folded with `dataset.reduce`; returns the delta and count."""
    def step(state, batch):
        weights, n = state
        residual = tf.linalg.matvec(batch["x"], weights) - batch["y"]
        gradient = tf.linalg.matvec(batch["x"], residual, transpose_a=True)
        return weights - 0.05 * gradient, n + tf.cast(tf.shape(batch["y"])[0], tf.float32)
    new, n = dataset.reduce((w, tf.constant(0.0)), step)
    return collections.OrderedDict(delta=new - w, n=n)


@fcore.tf_computation(W, np.float32)
def clip(delta, norm):
    return tf.clip_by_norm(delta, norm)


@fcore.tf_computation(W, W)
def apply(w, delta):
    return w + delta


@fcore.federated_computation(FederatedType(W, SERVER), FederatedType(SequenceType(BATCH),
                                                                     CLIENTS))
def custom_round(w, data):
    out = fcore.federated_map(local_fit, (fcore.federated_broadcast(w), data))
    clipped = fcore.federated_map(clip, (out.delta, fcore.federated_broadcast(
        fcore.federated_value(np.float32(0.5), SERVER))))
    mean = fcore.federated_mean(clipped, out.n)
    return fcore.federated_map(apply, (w, mean)), fcore.federated_sum(out.n), \
        fcore.federated_max(out.n)


@pytest.mark.parametrize("clients", [3, 20])
def test_a_custom_algorithm_with_several_leaves_and_dataset_reduce(client, clients):
    data = batches(clients, seed=clients)
    assert_same(on_every_executor(client, custom_round, np.zeros(4, np.float32), data))
    datasets = [tf.data.Dataset.from_tensor_slices(collections.OrderedDict(
        x=np.concatenate([b["x"] for b in c]), y=np.concatenate([b["y"] for b in c]))).batch(5)
        for c in data]
    assert_same(on_every_executor(client, custom_round, np.zeros(4, np.float32), datasets))


@fcore.tf_computation(SequenceType(np.float32))
def total(dataset):
    return dataset.reduce(np.float32(0), lambda a, b: a + b)


@fcore.federated_computation(FederatedType(SequenceType(np.float32), CLIENTS))
def sum_of_totals(data):
    return fcore.federated_sum(fcore.federated_map(total, data))


def test_datasets_of_unknown_length(client):
    def kept(i):
        return tf.data.Dataset.range(12).map(lambda v: tf.cast(v, tf.float32)).filter(
            lambda v: v > float(i % 5))
    data = [kept(i) for i in range(10)]
    assert tf.data.experimental.cardinality(data[0]) == tf.data.experimental.UNKNOWN_CARDINALITY
    # a dataset of unknown length may be endless: it is not read to travel, so on Dask this
    # pass runs on the driver
    results = on_every_executor(client, sum_of_totals, data, shipped=False)
    expected = sum(sum(v for v in range(12) if v > i % 5) for i in range(10))
    assert [float(r) for r in results] == [expected] * 3


@fcore.tf_computation(np.float32, np.float32)
def add(a, b):
    return a + b


@fcore.federated_computation(FederatedType(SequenceType(np.float32), CLIENTS))
def sequence_reduce_then_aggregate(data):
    totals = fcore.federated_map(
        fcore.federated_computation(lambda s: fcore.sequence_reduce(s, np.float32(0), add),
                                    SequenceType(np.float32)), data)
    return fcore.federated_aggregate(totals, np.float32(0), add, add,
                                     fcore.tf_computation(lambda x: x * 2, np.float32))


@pytest.mark.parametrize("clients", [3, 12])
def test_sequence_reduce_and_federated_aggregate(client, clients):
    data = [[float(i + j) for j in range(1 + i % 3)] for i in range(clients)]
    results = on_every_executor(client, sequence_reduce_then_aggregate, data)
    expected = 2 * sum(sum(c) for c in data)
    assert [float(r) for r in results] == pytest.approx([expected] * 3)


@fcore.tf_computation(TensorType(np.int32, [3]))
def quantised(values):
    return tf.clip_by_value(values, 0, 100)


@fcore.federated_computation(FederatedType(TensorType(np.int32, [3]), CLIENTS))
def secure_sums(values):
    bounded = fcore.federated_map(quantised, values)
    return fcore.federated_secure_sum_bitwidth(bounded, 8), \
        fcore.federated_secure_sum(bounded, 100)


@pytest.mark.parametrize("clients", [3, 20])
def test_secure_sums(client, clients):
    rng = np.random.default_rng(clients)
    values = [rng.integers(-10, 120, 3).astype(np.int32) for _ in range(clients)]
    results = on_every_executor(client, secure_sums, values)
    clipped = np.clip(np.stack(values), 0, 100).sum(0)
    for bitwidth_sum, bounded_sum in results:  # the sums of valid inputs are exact (TFF's
        np.testing.assert_array_equal(bitwidth_sum, clipped)  # range holds every such sum)
        np.testing.assert_array_equal(bounded_sum, clipped)


@fcore.tf_computation(W, W)
def squared_distance(point, center):
    return tf.reduce_sum((point - center) ** 2)


@fcore.federated_computation(FederatedType(W, CLIENTS), FederatedType(W, SERVER))
def spread(points, center):
    distances = fcore.federated_map(squared_distance, (points, fcore.federated_broadcast(
        center)))
    return fcore.federated_mean(distances), fcore.federated_min(distances)


def points_and_center(clients, seed):
    """Per-client points, a center, and each point's squared distance to it (NumPy)."""
    rng = np.random.default_rng(seed)
    points = [rng.normal(size=4).astype(np.float32) for _ in range(clients)]
    center = np.ones(4, np.float32)
    return points, center, ((np.stack(points) - center) ** 2).sum(1)


@pytest.mark.parametrize("clients", [3, 30])
def test_per_client_tensors(client, clients):
    points, center, distances = points_and_center(clients, seed=0)
    results = on_every_executor(client, spread, points, center)
    for mean, smallest in results:
        np.testing.assert_allclose(mean, distances.mean(), rtol=1e-5)
        np.testing.assert_allclose(smallest, distances.min(), rtol=1e-5)


@pytest.mark.parametrize("clients", [4, 20])
def test_a_tf_federated_aggregate_on_every_executor(client, clients):
    points, center, distances = points_and_center(clients, seed=clients)
    results = on_every_executor(client, farthest, points, center)
    for largest, total in results:
        np.testing.assert_allclose(largest, distances.max(), rtol=1e-6)
        np.testing.assert_allclose(total, distances.sum() + 1, rtol=1e-5)


PAIR = fcore.to_type((np.float32, np.float32))


@fcore.tf_computation(PAIR, np.float32)
def keep_largest(acc, x):
    return tf.maximum(acc[0], x), acc[1] + x


@fcore.tf_computation(PAIR, PAIR)
def merge_pairs(a, b):
    return tf.maximum(a[0], b[0]), a[1] + b[1]


@fcore.tf_computation(PAIR)
def plus_one(acc):
    return acc[0], acc[1] + 1


@fcore.federated_computation(FederatedType(W, CLIENTS), FederatedType(W, SERVER))
def farthest(points, center):
    distances = fcore.federated_map(squared_distance, (points, fcore.federated_broadcast(
        center)))
    return fcore.federated_aggregate(distances, (np.float32(-np.inf), np.float32(0)),
                                     keep_largest, merge_pairs, plus_one)


@fcore.tf_computation(TensorType(np.int32, [3]))
def lowered(values):
    return values - 10


@fcore.federated_computation(FederatedType(TensorType(np.int32, [3]), CLIENTS))
def unchecked_secure_sum(values):
    return fcore.federated_secure_sum(fcore.federated_map(lowered, values), 100)


def test_an_out_of_range_secure_sum_input_names_the_client_on_every_executor(client):
    values = [np.array([20, 30, 40], np.int32)] * 25 + [np.array([5, 30, 40], np.int32)]
    messages = []
    for context in ({"kind": "reference"}, {"kind": "fast"}, {"dask": client}):
        with fcore.execution_context(**context), pytest.raises(fcore.ExecutionError) as error:
            unchecked_secure_sum(values)
        messages.append(str(error.value))
    assert messages[0] == messages[1] == messages[2]
    assert "client 25" in messages[2]


@fcore.tf_computation(TensorType(np.float32, [3]))
def checked_log(values):
    tf.debugging.assert_positive(values, message="values must be positive")
    return tf.math.log(values)


@fcore.federated_computation(FederatedType(TensorType(np.float32, [3]), CLIENTS))
def mean_log(values):
    return fcore.federated_mean(fcore.federated_map(checked_log, values))


def test_a_failing_client_is_named_alike_on_every_executor(client):
    values = [np.ones(3, np.float32)] * 17 + [-np.ones(3, np.float32)] * 8
    messages = []
    for context in ({"kind": "reference"}, {"kind": "fast"}, {"dask": client}):
        with fcore.execution_context(**context), pytest.raises(fcore.ExecutionError) as error:
            mean_log(values)
        messages.append(str(error.value).splitlines()[0])
    assert messages[0] == messages[1] == messages[2]
    assert "client 17" in messages[2] and "checked_log" in messages[2]
