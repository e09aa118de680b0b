"""Helpers shared by the tests (importable as `support`: pytest puts tests/ on the path)."""

import collections
import collections.abc

import numpy as np
import pytest


def small_keras_model(units=16):
    """A compiled Keras MLP (784-units-10) for MNIST-shaped batches."""
    import tensorflow as tf
    model = tf.keras.models.Sequential([tf.keras.Input(shape=(784,)),
                                        tf.keras.layers.Dense(units, activation="relu"),
                                        tf.keras.layers.Dense(10, activation="softmax")])
    model.compile(loss=tf.keras.losses.SparseCategoricalCrossentropy(),
                  optimizer=tf.keras.optimizers.SGD(0.1),
                  metrics=[tf.keras.metrics.SparseCategoricalAccuracy()])
    return model


def mnist_spec():
    import tensorflow as tf
    return collections.OrderedDict(x=tf.TensorSpec([None, 784], tf.float32),
                                   y=tf.TensorSpec([None], tf.int32))


def small_model_fn(units=16):
    """`small_keras_model` wrapped as a `learning.Model`."""
    import learning
    return learning.from_keras_model(small_keras_model(units), input_spec=mnist_spec())


def random_client_data(count, seed=0):
    """`count` clients of one random batch each, of 1 to 29 examples."""
    rng = np.random.default_rng(seed)
    return [[collections.OrderedDict(x=rng.random((n, 784), dtype=np.float32),
                                     y=rng.integers(0, 10, n).astype(np.int32))]
            for n in rng.integers(1, 30, count)]


def assert_close(a, b):
    """Nested results (structs, lists, tuples of numbers) equal to float tolerance."""
    import tensorflow as tf
    for x, y in zip(tf.nest.flatten(_plain(a)), tf.nest.flatten(_plain(b)), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def _plain(value):
    import fcore
    if isinstance(value, (fcore.Struct, list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, collections.abc.Mapping):
        return [_plain(v) for v in value.values()]
    return np.asarray(value, dtype=np.float64)


def local_cluster():
    """A real 2-worker `dask.distributed` LocalCluster and its client (a generator for
    module-scoped fixtures)."""
    import distributed
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0")  # None still tries port 8787
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def run(kind, computation, *args):
    """`computation(*args)` on the executor `kind`."""
    import fcore
    with fcore.execution_context(kind):
        return computation(*args)


def assert_same(want, found):
    """Equal to 1e-6, container by container (dicts, structs, namedtuples, ...)."""
    from fcore.struct import python_items
    items = python_items(want)
    if items is not None:
        found_items = python_items(found)[0]
        assert [k for k, _ in items[0]] == [k for k, _ in found_items]
        for (_, a), (_, b) in zip(items[0], found_items):
            assert_same(a, b)
        return
    np.testing.assert_allclose(np.asarray(found), np.asarray(want), rtol=1e-6, atol=1e-6)


@pytest.fixture
def leaf_calls(monkeypatch):
    """How many times the fast executor ran each TF leaf client by client (by name)."""
    from fcore.execution import streaming
    calls = collections.Counter()
    original = streaming.StreamingInterpreter.run_leaf

    def counting(self, leaf, argument):
        calls[leaf.name] += 1
        return original(self, leaf, argument)
    monkeypatch.setattr(streaming.StreamingInterpreter, "run_leaf", counting)
    return calls
