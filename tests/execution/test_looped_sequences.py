"""Clients whose sequences differ in their number of batches (a Dirichlet split): the fast
executor runs them in one compiled loop over the leaf's looped variant, traced once for any
number of batches (`TFFunction.looped_variant`, `lowering.run_looped`), with the results of
the reference executor and of NumPy."""

import numpy as np
import pytest
import tensorflow as tf

import fcore
from fcore.execution import lowering
from support import assert_close, run

CLIENTS = fcore.CLIENTS
BATCH = 4
WEIGHTS = fcore.TensorType(np.float32, [3])
BATCHES = fcore.SequenceType(fcore.TensorType(np.float32, [None, 3]))


def clients(counts, seed=0):
    """Clients of `counts[i]` examples each, in batches of BATCH (the last one partial)."""
    rng = np.random.default_rng(seed)
    out = []
    for count in counts:
        x = rng.normal(size=(count, 3)).astype(np.float32)
        out.append([x[i:i + BATCH] for i in range(0, count, BATCH)])
    return out


@fcore.tf_computation(WEIGHTS, BATCHES)
def train(weights, dataset):
    """Least squares towards each batch's rows, one SGD step per batch (`for`)."""
    w, count = tf.identity(weights), tf.constant(0.0)
    for batch in dataset:
        with tf.GradientTape() as tape:
            tape.watch(w)
            loss = tf.reduce_mean(tf.reduce_sum(tf.square(batch - w), 1))
        w = w - 0.1 * tape.gradient(loss, w)
        count += tf.cast(tf.shape(batch)[0], tf.float32)
    return w - weights, count


@fcore.federated_computation(fcore.FederatedType(WEIGHTS, fcore.SERVER),
                             fcore.FederatedType(BATCHES, CLIENTS))
def fedavg_round(weights, data):
    delta, count = fcore.federated_map(train, (fcore.federated_broadcast(weights), data))
    return fcore.federated_mean(delta, count)


def numpy_round(weights, data):
    total, weight = np.zeros(3), 0.0
    for batches in data:
        w = weights.astype(np.float64)
        for batch in batches:
            w = w - 0.1 * 2 * (w - batch).mean(0)
        total += (w - weights) * sum(len(b) for b in batches)
        weight += sum(len(b) for b in batches)
    return total / weight


def test_clients_of_any_number_of_batches_share_one_compiled_loop(leaf_calls):
    weights = np.array([0.5, -0.5, 1.0], np.float32)
    first = clients([1, 5, 9, 14, 23, 3, 30, 7])  # 1 to 8 batches, partial last ones
    found = run("fast", fedavg_round, weights, first)
    assert_close(found, run("reference", fedavg_round, weights, first))
    np.testing.assert_allclose(found, numpy_round(weights, first), rtol=1e-5, atol=1e-6)
    loops = lowering.compiled_loops(train.ir.computation)
    assert [type(loop).__name__ for loop in loops] == ["_LoopedFunction"]
    loop = loops[0]
    assert loop.jit and loop.functions[0] is loop.traced[0]  # XLA's, kept
    # a round of other clients, with other numbers of batches (sampling): the same loop
    second = clients([2, 11, 4, 26, 17, 8, 1, 13, 6], seed=1)
    found = run("fast", fedavg_round, weights, second)
    np.testing.assert_allclose(found, numpy_round(weights, second), rtol=1e-5, atol=1e-6)
    assert lowering.compiled_loops(train.ir.computation) == [loop]
    assert loop.functions[0] is loop.traced[0]
    assert leaf_calls["train"] == 0


def fold(ds):
    return ds.reduce(tf.zeros([3]), lambda acc, b: tf.maximum(acc, tf.reduce_max(b, 0)))


def mapped(ds):
    return ds.map(lambda b: b * 2.0).reduce(tf.zeros([3]), lambda a, b: a + tf.reduce_sum(b, 0))


def windowed(ds):
    return ds.skip(1).take(2).reduce(tf.zeros([3]), lambda a, b: a + tf.reduce_mean(b, 0))


def numbered(ds):
    total = tf.zeros([3])
    for i, b in ds.skip(1).enumerate():
        total += tf.cast(i + 1, tf.float32) * tf.reduce_sum(b, 0)
    return total + tf.cast(ds.cardinality(), tf.float32)


def stopped(ds):
    total = tf.zeros([3])
    for b in ds:
        total += tf.reduce_mean(b, 0)
        if tf.reduce_sum(total) > 1.0:
            break
    return total


def last_after_loop(ds):  # uses the loop's last element after it: runs unrolled
    b = tf.zeros([1, 3])
    for b in ds:
        pass
    return tf.reduce_sum(b, 0)


def oracle(body, batches):
    zero = np.zeros(3)
    if body is fold:
        return np.max([np.max(b, 0) for b in batches] + [zero], 0)
    if body is mapped:
        return sum((2 * b.sum(0) for b in batches), zero)
    if body is windowed:
        return sum((b.mean(0) for b in batches[1:3]), zero)
    if body is numbered:
        return sum(((i + 1) * b.sum(0) for i, b in enumerate(batches[1:])), zero) + \
            len(batches)
    if body is stopped:
        total = zero
        for b in batches:
            total = total + b.mean(0)
            if total.sum() > 1.0:
                break
        return total
    return batches[-1].sum(0) if batches else zero


@pytest.mark.parametrize("body", [fold, mapped, windowed, numbered, stopped,
                                  last_after_loop])
def test_generated_clients_match_numpy(body):
    """Dataset code on clients of random numbers of examples (Hypothesis), against NumPy."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    leaf = fcore.tf_computation(body, BATCHES)
    summed = fcore.federated_computation(
        lambda data: fcore.federated_sum(fcore.federated_map(leaf, data)),
        fcore.FederatedType(BATCHES, CLIENTS))

    @settings(max_examples=6, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(counts=st.lists(st.integers(1, 6 * BATCH), min_size=lowering.MIN_GROUP,
                           max_size=lowering.MIN_GROUP + 3),
           seed=st.integers(0, 2**16))
    def check(counts, seed):
        data = clients(counts, seed)
        want = sum(oracle(body, batches) for batches in data)
        np.testing.assert_allclose(run("fast", summed, data), want, rtol=1e-5, atol=1e-5)
    check()
    looped = list(leaf.ir.computation._looped.values())
    assert any(v is not None for v in looped) == (body is not last_after_loop)


@fcore.tf_computation(WEIGHTS, BATCHES)
def checked_train(weights, dataset):
    """`train` with an assertion: XLA would drop it, so its loop runs as a plain graph."""
    w = tf.identity(weights)
    for batch in dataset:
        tf.debugging.assert_less(tf.reduce_max(tf.abs(batch)), 100.0)
        w = w - 0.1 * 2 * tf.reduce_mean(w - batch, 0)
    return w - weights


@fcore.federated_computation(fcore.FederatedType(WEIGHTS, fcore.SERVER),
                             fcore.FederatedType(BATCHES, CLIENTS))
def checked_round(weights, data):
    return fcore.federated_mean(
        fcore.federated_map(checked_train, (fcore.federated_broadcast(weights), data)))


def test_a_looped_loop_that_asserts_runs_as_a_plain_graph_and_names_the_client():
    weights = np.array([0.5, -0.5, 1.0], np.float32)
    data = clients([1, 5, 9, 14, 23, 3, 30, 7, 12])
    want = np.mean([numpy_round(weights, [c]) for c in data], 0)
    np.testing.assert_allclose(run("fast", checked_round, weights, data), want,
                               rtol=1e-5, atol=1e-6)
    [loop] = lowering.compiled_loops(checked_train.ir.computation)
    assert type(loop).__name__ == "_LoopedFunction" and not loop.jit and loop.plain_ran
    data[6][5][2, 1] = 1e3  # client 6's sixth batch fails the assertion
    for kind in ("reference", "fast"):
        with pytest.raises(fcore.ExecutionError, match="'checked_train' failed on client 6"):
            run(kind, checked_round, weights, data)
