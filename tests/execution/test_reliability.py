"""No silent wrong numbers (integer sums that overflow, floats that do not fit their dtype),
computations called from several threads, and compiled loops that neither retrace every
round nor outlive their computation."""

import collections
import threading
import warnings

import numpy as np
import pytest
import tensorflow as tf

import fcore
import learning
from fcore.execution import lowering

from support import assert_close, local_cluster, random_client_data, small_model_fn

EXECUTORS = ["reference", "fast"]


def run(kind, computation, *args):
    with fcore.execution_context(kind):
        return computation(*args)


def summing(dtype):
    return fcore.federated_computation(lambda x: fcore.federated_sum(x),
                                       fcore.FederatedType(dtype, fcore.CLIENTS))


@pytest.mark.parametrize("kind", EXECUTORS)
@pytest.mark.parametrize("dtype, members", [
    (np.int32, [2**31 - 1, 1]),
    (np.uint8, [200, 100]),
    (np.int64, [2**62, 2**62]),
    (np.int8, [-100, -100]),
])
def test_integer_sums_that_overflow_are_errors(kind, dtype, members):
    values = [dtype(m) for m in members]
    with pytest.raises(fcore.ExecutionError, match=f"does not fit {np.dtype(dtype).name}"):
        run(kind, summing(dtype), values)
    assert run(kind, summing(dtype), values[:1]) == values[0]


@pytest.mark.parametrize("kind", EXECUTORS)
def test_integer_sequence_sum_overflow_is_an_error(kind):
    f = fcore.federated_computation(lambda s: fcore.sequence_sum(s), fcore.SequenceType(np.int32))
    with pytest.raises(fcore.ExecutionError, match="does not fit int32"):
        run(kind, f, [np.int32(2**31 - 1), np.int32(2)])


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_compiled_integer_sums_overflow_is_an_error(dtype):
    """Clients alike enough to run in one compiled graph sum in the graph, checked too."""
    element = fcore.TensorType(dtype, [2])

    @fcore.tf_computation(fcore.SequenceType(element))
    def total(ds):
        t = tf.zeros([2], dtype)
        for b in ds:
            t = t + b
        return t
    clients = fcore.FederatedType(fcore.SequenceType(element), fcore.CLIENTS)
    f = fcore.federated_computation(
        lambda x: fcore.federated_sum(fcore.federated_map(total, x)), clients)
    big = np.iinfo(dtype).max // 4
    data = [[np.full(2, big, dtype)] for _ in range(lowering.MIN_GROUP + 2)]
    with fcore.execution_context("fast"):
        with pytest.raises(fcore.ExecutionError, match="does not fit"):
            f(data)
        np.testing.assert_array_equal(f(data[:3]), [3 * big, 3 * big])
    assert "_GroupFunction" in [type(loop).__name__
                                for loop in lowering.compiled_loops(total.ir.computation)]


def test_integer_sum_overflow_on_dask():
    pytest.importorskip("distributed")
    for client in local_cluster():
        with fcore.execution_context(dask=client):
            with pytest.raises(fcore.ExecutionError, match="does not fit int32"):
                summing(np.int32)([np.int32(2**30)] * 4)
            assert summing(np.int32)([np.int32(2**29)] * 3) == 3 * 2**29


@pytest.mark.parametrize("value", [np.float64(1e300), 1e300, [1.0, 1e39]])
def test_a_float_that_does_not_fit_its_dtype_is_refused(value):
    identity = fcore.tf_computation(lambda x: x, fcore.TensorType(np.float32, None))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no NumPy overflow warning either
        with pytest.raises(fcore.TypeMismatchError, match="does not fit float32"):
            identity(value)
    assert identity(np.float64(0.5)) == np.float32(0.5)
    assert np.isinf(identity(np.float64("inf")))  # infinite already: kept


def test_threads_calling_one_process_get_the_results_of_sequential_calls():
    process = learning.build_federated_averaging_process(small_model_fn)
    state = process.initialize()
    datasets = [random_client_data(4, seed=s) for s in range(6)]
    expected = [process.next(state, data) for data in datasets]
    reports = [None] * len(datasets)
    results = [None] * len(datasets)

    def call(i):
        results[i] = process.next(state, datasets[i])
        reports[i] = process.next.last_report
    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(datasets))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for want, found in zip(expected, results):
        assert_close(want, found)
    assert all(report.clients == 4 for report in reports)


def test_a_round_without_clients_warns_and_reports_it():
    process = learning.build_federated_averaging_process(small_model_fn)
    state = process.initialize()
    with pytest.warns(RuntimeWarning, match="no clients"):
        new_state, metrics = process.next(state, [])
    assert process.next.last_report.clients == 0
    assert_close(state.model, new_state.model)


def _batch_norm_model():
    model = tf.keras.Sequential([tf.keras.Input(shape=(4,)),
                                 tf.keras.layers.BatchNormalization(),
                                 tf.keras.layers.Dense(2)])
    model.compile(loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  optimizer=tf.keras.optimizers.SGD(0.1))
    sample = collections.OrderedDict(x=np.zeros((2, 4), np.float32), y=np.zeros(2, np.int32))
    return learning.from_compiled_keras_model(model, sample)


def test_non_trainable_weights_warn_and_can_be_averaged():
    rng = np.random.default_rng(0)
    data = [[collections.OrderedDict(x=(rng.normal(size=(6, 4)) * 3 + 5).astype(np.float32),
                                     y=rng.integers(0, 2, 6).astype(np.int32))]
            for _ in range(3)]
    with pytest.warns(UserWarning, match="non-trainable weights"):
        kept = learning.build_federated_averaging_process(_batch_norm_model)
    state, _ = kept.next(kept.initialize(), data)
    np.testing.assert_array_equal(state.model.non_trainable[0], np.zeros(4))  # as in TFF
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        averaged = learning.build_federated_averaging_process(_batch_norm_model,
                                                              average_non_trainable=True)
    state, _ = averaged.next(averaged.initialize(), data)
    moving_mean = np.asarray(state.model.non_trainable[0])
    assert np.all(moving_mean > 0)  # moved towards the data's mean (about 5)
    with pytest.warns(RuntimeWarning, match="no clients"):
        unchanged, _ = averaged.next(state, [])
    np.testing.assert_array_equal(unchanged.model.non_trainable[0], moving_mean)


def test_sampled_unequal_clients_do_not_retrace_every_round():
    process = learning.build_federated_averaging_process(small_model_fn)
    state = process.initialize()
    population = random_client_data(40, seed=7)
    rng = np.random.default_rng(0)
    counts = []
    for _ in range(6):
        chosen = rng.choice(len(population), 10, replace=False)
        state, _ = process.next(state, [population[i] for i in chosen])
        loops = [loop for leaf in process.next.leaves().values()
                 for loop in lowering.compiled_loops(leaf)]
        counts.append(sum(f.experimental_get_tracing_count() for loop in loops
                          for f in loop.traced or []))
    assert counts[1] > 0, counts  # the rounds ran compiled
    assert counts[-1] == counts[1], counts  # every client has one batch: no new lengths


_FREED = """
import collections, gc, weakref
import numpy as np, tensorflow as tf
import learning, learning.fedavg
from fcore.execution import lowering

def model_fn():
    model = tf.keras.Sequential([tf.keras.Input(shape=(784,)), tf.keras.layers.Dense(10)])
    model.compile(loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  optimizer=tf.keras.optimizers.SGD(0.1))
    spec = collections.OrderedDict(x=tf.TensorSpec([None, 784], tf.float32),
                                   y=tf.TensorSpec([None], tf.int32))
    return learning.from_keras_model(model, input_spec=spec, loss=model.loss)

process = learning.build_federated_averaging_process(model_fn)
rng = np.random.default_rng(1)
data = [[collections.OrderedDict(x=rng.random((20, 784), dtype=np.float32),
                                 y=rng.integers(0, 10, 20).astype(np.int32))]
        for _ in range(lowering.MIN_GROUP)]
process.next(process.initialize(), data)
leaf = next(leaf for leaf in process.next.leaves().values() if lowering.compiled_loops(leaf))
alive = weakref.ref(leaf)
del process, leaf
gc.collect()
print("freed" if alive() is None else "alive")
"""


def test_compiled_loops_are_freed_with_their_computation():
    """In a fresh interpreter (the suite keeps every computation it builds alive)."""
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-c", _FREED], capture_output=True, text=True,
                            timeout=300)
    assert result.stdout.strip().splitlines()[-1:] == ["freed"], result.stderr[-2000:]
