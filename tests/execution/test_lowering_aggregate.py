"""`federated_aggregate` in the compiled client loop: each group of alike clients folds its
clients into its own accumulator with `accumulate` called in the graph, groups are merged
with `merge` and `report` runs once. Checked against NumPy and the reference executor, with
the count of clients that ran client by client."""

import collections

import numpy as np
import pytest
import tensorflow as tf

import fcore
from fcore import CLIENTS, SERVER, FederatedType, StructType, TensorType
from fcore.execution import lowering

from support import assert_same, run

VECTOR = TensorType(np.float32, [1000])
ACC = StructType([("total", TensorType(np.float64, [1000])),
                  ("largest", TensorType(np.float32)), ("count", TensorType(np.int32))])


@fcore.tf_computation(VECTOR, VECTOR)
def shifted(x, center):
    return x - center


@fcore.tf_computation(ACC, VECTOR)
def accumulate(acc, x):
    return collections.OrderedDict(total=acc["total"] + tf.cast(x, tf.float64),
                                   largest=tf.maximum(acc["largest"], tf.reduce_max(x)),
                                   count=acc["count"] + 1)


@fcore.tf_computation(ACC, ACC)
def merge(a, b):
    return collections.OrderedDict(total=a["total"] + b["total"],
                                   largest=tf.maximum(a["largest"], b["largest"]),
                                   count=a["count"] + b["count"])


@fcore.tf_computation(ACC)
def report(acc):
    return collections.OrderedDict(mean=acc["total"] / tf.cast(acc["count"], tf.float64),
                                   largest=acc["largest"])


ZERO = collections.OrderedDict(total=np.zeros(1000), largest=np.float32(-np.inf),
                               count=np.int32(0))


@fcore.federated_computation(FederatedType(VECTOR, CLIENTS), FederatedType(VECTOR, SERVER))
def statistics(values, center):
    moved = fcore.federated_map(shifted, (values, fcore.federated_broadcast(center)))
    return fcore.federated_aggregate(moved, ZERO, accumulate, merge, report), \
        fcore.federated_sum(moved)


def points(count, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=1000).astype(np.float32) for _ in range(count)]


def expected(values, center):
    moved = np.stack(values) - center
    return moved.astype(np.float64).mean(0), moved.max(), moved.sum(0)


@pytest.mark.parametrize("count", [3, 40])
def test_a_tf_accumulate_runs_in_the_compiled_loop(count, leaf_calls):
    values, center = points(count), points(1, seed=1)[0]
    want = run("reference", statistics, values, center)
    leaf_calls.clear()
    found = run("fast", statistics, values, center)
    assert_same(want, found)
    mean, largest, total = expected(values, center)
    np.testing.assert_allclose(found[0]["mean"], mean, rtol=1e-9)
    assert float(found[0]["largest"]) == largest
    np.testing.assert_allclose(found[1], total, rtol=1e-5, atol=1e-4)
    compiled = count >= lowering.MIN_GROUP
    assert leaf_calls["shifted"] == (0 if compiled else count)
    assert leaf_calls["accumulate"] == (0 if compiled else count)
    assert bool(lowering.compiled_loops(shifted.ir.computation)) == compiled


@fcore.tf_computation(TensorType(np.int32, [3]))
def doubled(x):
    return x * 2


@fcore.tf_computation(TensorType(np.int64, [3]), TensorType(np.int32, [3]))
def plus(a, x):
    return a + tf.cast(x, tf.int64)


@fcore.tf_computation(TensorType(np.int64, [3]), TensorType(np.int64, [3]))
def plus64(a, b):
    return a + b


@fcore.federated_computation(FederatedType(TensorType(np.int32, [3]), CLIENTS))
def lambda_parts(values):
    """`accumulate` and `merge` as lambdas (of TF leaves), `report` a TF leaf."""
    twice = fcore.federated_map(doubled, values)
    add = fcore.federated_computation(lambda a, x: plus(a, x), TensorType(np.int64, [3]),
                                      TensorType(np.int32, [3]))
    both = fcore.federated_computation(lambda a, b: plus64(a, b), TensorType(np.int64, [3]),
                                       TensorType(np.int64, [3]))
    return fcore.federated_aggregate(twice, np.zeros(3, np.int64), add, both,
                                     fcore.tf_computation(lambda a: a + 1,
                                                          TensorType(np.int64, [3])))


@pytest.mark.parametrize("count", [5, 30])
def test_lambda_accumulate_and_merge_are_exact(count, leaf_calls):
    rng = np.random.default_rng(count)
    values = [rng.integers(-1000, 1000, 3).astype(np.int32) for _ in range(count)]
    leaf_calls.clear()
    found = run("fast", lambda_parts, values)
    np.testing.assert_array_equal(found, 2 * np.stack(values).astype(np.int64).sum(0) + 1)
    np.testing.assert_array_equal(found, run("reference", lambda_parts, values))
    assert leaf_calls["plus"] == (0 if count >= lowering.MIN_GROUP else count)


@pytest.mark.parametrize("kind", ["reference", "fast"])
def test_a_zero_that_is_not_an_identity_of_merge_is_still_an_error(kind):
    bad = collections.OrderedDict(ZERO)
    bad["count"] = np.int32(1)

    @fcore.federated_computation(FederatedType(VECTOR, CLIENTS))
    def wrong(values):
        return fcore.federated_aggregate(values, bad, accumulate, merge, report)
    with pytest.raises(fcore.ExecutionError, match="identity of merge"):
        run(kind, wrong, points(20))
