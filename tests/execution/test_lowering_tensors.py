"""Compiled passes over per-client tensors (no sequence): each client's own array (or struct of
arrays) is stacked across a group of alike clients, broadcasts stay shared inputs, and the
results are the reference interpreter's."""

import collections

import numpy as np
import pytest
import tensorflow as tf

import fcore
from fcore import CLIENTS, SERVER, FederatedType, TensorType
from fcore.execution import lowering

from support import assert_same, run

VECTOR = TensorType(np.float32, [1000])


@fcore.tf_computation(VECTOR, VECTOR)
def sq_dist(x, center):
    return tf.reduce_sum((x - center) ** 2)


@fcore.federated_computation(FederatedType(VECTOR, CLIENTS), FederatedType(VECTOR, SERVER))
def spread(points, center):
    c = fcore.federated_broadcast(center)
    return fcore.federated_mean(fcore.federated_map(sq_dist, fcore.federated_zip((points, c))))


LAYER = fcore.to_type(collections.OrderedDict(w=TensorType(np.float32, [4, 3]),
                                              b=TensorType(np.float32, [3])))
INPUT = TensorType(np.float32, [4])


@fcore.tf_computation(LAYER, INPUT)
def apply_layer(layer, x):
    y = tf.linalg.matvec(layer["w"], x, transpose_a=True) + layer["b"]
    return collections.OrderedDict(y=y, norm=tf.norm(layer["w"]), big=tf.cast(y[0] > 0, tf.int32))


@fcore.federated_computation(FederatedType(LAYER, CLIENTS), FederatedType(INPUT, SERVER))
def layer_stats(layers, x):
    x_at_clients = fcore.federated_broadcast(x)
    out = fcore.federated_map(apply_layer, fcore.federated_zip((layers, x_at_clients)))
    return collections.OrderedDict(mean_y=fcore.federated_mean(out.y),
                                   weighted=fcore.federated_mean(out.y, out.norm),
                                   big=fcore.federated_sum(out.big))


def points(count, seed=0, size=1000):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=size).astype(np.float32) for _ in range(count)]


def layers(count, seed=0):
    rng = np.random.default_rng(seed)
    return [collections.OrderedDict(w=rng.normal(size=(4, 3)).astype(np.float32),
                                    b=rng.normal(size=3).astype(np.float32))
            for _ in range(count)]


def tracings(leaf):
    return [f.experimental_get_tracing_count() for loop in lowering.compiled_loops(leaf)
            for f in loop.traced or []]


@pytest.mark.parametrize("count", [3, 40])
def test_spread_matches_the_reference(count, leaf_calls):
    data, center = points(count), points(1, seed=1)[0]
    want = run("reference", spread, data, center)
    leaf_calls.clear()
    found = run("fast", spread, data, center)
    assert_same(want, found)
    np.testing.assert_allclose(found, np.mean([np.sum((p - center) ** 2) for p in data]),
                               rtol=1e-5)
    # below MIN_GROUP every client runs the leaf; a large group runs none of them
    assert leaf_calls["sq_dist"] == (count if count < lowering.MIN_GROUP else 0)


@pytest.mark.parametrize("count", [3, 40])
def test_a_struct_valued_per_client_input_matches_the_reference(count, leaf_calls):
    x = np.linspace(-1, 1, 4).astype(np.float32)
    want = run("reference", layer_stats, layers(count), x)
    leaf_calls.clear()
    found = run("fast", layer_stats, layers(count), x)
    assert_same(want, found)
    assert leaf_calls["apply_layer"] == (count if count < lowering.MIN_GROUP else 0)


def test_the_compiled_loop_is_reused_for_new_arrays_of_the_same_shapes(leaf_calls):
    leaf = sq_dist.ir.computation
    center = points(1, seed=1)[0]
    run("fast", spread, points(40, seed=2), center)
    loops = lowering.compiled_loops(leaf)
    assert [type(loop).__name__ for loop in loops] == ["_GroupFunction"]
    traced = tracings(leaf)
    assert sum(traced) > 0
    for seed in (3, 4):  # new per-client arrays and a new center: no new graph, no retracing
        data, center = points(40, seed=seed), points(1, seed=seed + 10)[0]
        leaf_calls.clear()
        assert_same(run("reference", spread, data, center), run("fast", spread, data, center))
        assert leaf_calls["sq_dist"] == 0
        assert lowering.compiled_loops(leaf) == loops
        assert tracings(leaf) == traced


def test_groups_of_nearby_sizes_share_one_input_shape(monkeypatch):
    """XLA compiles per input shape: a group's stacked inputs are padded to 2**k or
    1.5 * 2**k rows, so sampled groups of 33..48 clients reuse one compiled loop."""
    shapes = []
    original = lowering._GroupFunction._call

    def recording(self, shared, data):
        shapes.append(tuple(data[0][0].shape))
        return original(self, shared, data)
    monkeypatch.setattr(lowering._GroupFunction, "_call", recording)
    center = points(1, seed=1)[0]
    for count in (33, 40, 47, 48, 49):
        data = points(count, seed=count)
        assert_same(run("reference", spread, data, center), run("fast", spread, data, center))
    assert shapes == [(48, 1000)] * 4 + [(64, 1000)]
    assert [lowering._bucket(n) for n in (1, 8, 9, 13, 17, 25, 33, 100)] == \
        [8, 8, 12, 16, 24, 32, 48, 128]


def test_broadcast_positions_are_shared_and_client_positions_stacked():
    """The group function's layout: the clients' points stacked, the center passed once."""
    run("fast", spread, points(40, seed=5), points(1, seed=6)[0])
    (loop,) = lowering.compiled_loops(sq_dist.ir.computation)
    assert loop.layout == [("stacked", 0), ("shared", 0)]


def test_one_array_given_to_every_client_is_shared():
    same = points(1, seed=7)[0]
    data, center = [same] * 40, points(1, seed=8)[0]
    assert_same(run("reference", spread, data, center), run("fast", spread, data, center))


def test_clients_of_several_shapes_run_in_groups_by_shape(leaf_calls):
    @fcore.tf_computation(TensorType(np.float32, [None]))
    def stats(x):
        return collections.OrderedDict(total=tf.reduce_sum(x), size=tf.size(x))

    f = fcore.federated_computation(
        lambda x: fcore.federated_sum(fcore.federated_map(stats, x)),
        FederatedType(TensorType(np.float32, [None]), CLIENTS))
    rng = np.random.default_rng(9)
    data = [rng.normal(size=4 + 2 * (i % 2)).astype(np.float32) for i in range(20)] + \
        [np.ones(5, np.float32)] * 1 + [rng.normal(size=5).astype(np.float32)] * 2
    leaf_calls.clear()
    assert_same(run("reference", f, data), run("fast", f, data))
    assert leaf_calls["stats"] == 3  # two compiled groups of 10; the 3 of shape [5] one by one
    # the groups differ only in a size: one loop serves both (XLA compiles it for each shape)
    (loop,) = lowering.compiled_loops(stats.ir.computation)
    assert sum(f.experimental_get_tracing_count() for f in loop.traced) <= 2


def test_a_median_of_40_clients_is_numpy_s_median(leaf_calls):
    value_type = TensorType(np.float32, [100])
    process = fcore.aggregators.MedianFactory().create(value_type)
    data = points(40, seed=11, size=100)
    with fcore.execution_context("fast"):
        output = process.next(process.initialize(), data)
    np.testing.assert_array_equal(output.result, np.median(np.stack(data), axis=0))
    assert output.measurements["clients"] == 40
    # the bisection rounds ran compiled: only the server's leaves ran outside a loop
    assert leaf_calls["answer"] == 0 and leaf_calls["first_answer"] == 0
    answer = next(leaf for leaf in process.next.leaves().values() if leaf.name == "answer")
    traced = tracings(answer)
    assert len(lowering.compiled_loops(answer)) == 1 and sum(traced) > 0
    data = points(40, seed=12, size=100)  # the next call: new values, the same graphs
    with fcore.execution_context("fast"):
        output = process.next(process.initialize(), data)
    np.testing.assert_array_equal(output.result, np.median(np.stack(data), axis=0))
    assert tracings(answer) == traced


def test_clipped_weighted_mean_takes_the_clients_weights_into_the_loop(leaf_calls):
    """A step after the leaf (the weighted mean) takes a per-client value from the argument
    (the weights): it is stacked as an input of the compiled loop."""
    process = fcore.aggregators.clipping_factory(
        30.0, fcore.aggregators.MeanFactory()).create(VECTOR)
    state = process.initialize()
    rng = np.random.default_rng(12)
    for count in (3, 40):
        data = points(count, seed=count)
        weights = [np.float32(w) for w in rng.uniform(0, 5, count)]
        weights[1] = np.float32(0.0)
        want = run("reference", process.next, state, data, weights)
        leaf_calls.clear()
        found = run("fast", process.next, state, data, weights)
        assert_same(want.result, found.result)
        assert_same(want.measurements, found.measurements)
        assert leaf_calls["clip"] == (count if count < lowering.MIN_GROUP else 0)


def test_per_client_tensors_next_to_sequences_run_compiled_and_ragged(leaf_calls):
    """A leaf that takes each client's batches and its own offset: alike clients run in one
    group loop, clients of other lengths in the ragged loop, both stacking the offsets."""
    batch = TensorType(np.float32, [None, 2])

    @fcore.tf_computation(fcore.SequenceType(batch), TensorType(np.float32, [2]))
    def shifted_sum(ds, offset):
        total = tf.zeros([2])
        for b in ds:
            total = total + tf.reduce_sum(b + offset, axis=0)
        return total

    f = fcore.federated_computation(
        lambda ds, offsets: fcore.federated_mean(fcore.federated_map(
            shifted_sum, fcore.federated_zip((ds, offsets)))),
        FederatedType(fcore.SequenceType(batch), CLIENTS),
        FederatedType(TensorType(np.float32, [2]), CLIENTS))
    rng = np.random.default_rng(13)
    alike = [[rng.normal(size=(3, 2)).astype(np.float32)] for _ in range(10)]
    odd = [[rng.normal(size=(n, 2)).astype(np.float32) for n in range(1, k + 2)]
           for k in range(4)]
    data = alike + odd
    offsets = [rng.normal(size=2).astype(np.float32) for _ in data]
    leaf_calls.clear()
    assert_same(run("reference", f, data, offsets), run("fast", f, data, offsets))
    assert leaf_calls["shifted_sum"] == 0
    kinds = sorted(type(loop).__name__ for loop in lowering.compiled_loops(
        shifted_sum.ir.computation))
    assert kinds == ["_GroupFunction", "_RaggedFunction"]


def test_compiled_integer_sums_of_client_tensors_are_checked():
    identity = fcore.tf_computation(lambda x: x, TensorType(np.int32, [2]))
    f = fcore.federated_computation(
        lambda x: fcore.federated_sum(fcore.federated_map(identity, x)),
        FederatedType(TensorType(np.int32, [2]), CLIENTS))
    big = np.iinfo(np.int32).max // 8
    data = [np.full(2, big, np.int32) for _ in range(10)]
    with fcore.execution_context("fast"):
        with pytest.raises(fcore.ExecutionError, match="does not fit"):
            f(data)
        small = [np.array([i, -i], np.int32) for i in range(10)]
        np.testing.assert_array_equal(f(small), [45, -45])
    assert lowering.compiled_loops(identity.ir.computation)


def test_string_client_values_run_client_by_client(leaf_calls):
    length = fcore.tf_computation(lambda s: tf.strings.length(s), TensorType(np.str_))
    f = fcore.federated_computation(
        lambda x: fcore.federated_sum(fcore.federated_map(length, x)),
        FederatedType(TensorType(np.str_), CLIENTS))
    data = [f"client {i}" for i in range(12)]
    leaf_calls.clear()
    assert run("reference", f, data) == run("fast", f, data) == sum(len(s) for s in data)
    assert leaf_calls[length.ir.computation.name] == 12


SMALL = TensorType(np.float32, [3])


@fcore.tf_computation(SMALL, SMALL)
def scaled(x, c):
    return x * c


@fcore.tf_computation(SMALL, fcore.to_type((SMALL, SMALL)))
def minus_first(a, pair):
    return a - pair[0] + 0.5 * pair[1]


@fcore.federated_computation(FederatedType(SMALL, CLIENTS), FederatedType(SMALL, SERVER),
                             FederatedType(np.float32, CLIENTS))
def mixed(x, c, w):
    xc = fcore.federated_zip((x, fcore.federated_broadcast(c)))
    y = fcore.federated_map(scaled, xc)
    d = fcore.federated_map(minus_first, fcore.federated_zip((y, xc)))
    return collections.OrderedDict(
        y=y, total=fcore.federated_sum(d), weighted=fcore.federated_mean(d, w),
        again=fcore.federated_sum(fcore.federated_map(minus_first, fcore.federated_zip(
            (d, fcore.federated_zip((x, x)))))))


def test_steps_after_the_leaf_take_per_client_values_from_outside_the_loop(leaf_calls):
    """Steps after the leaf use the zip made before it and the argument's client values;
    the weights come from the argument; the leaf's per-client results are kept."""
    rng = np.random.default_rng(14)
    x = [rng.normal(size=3).astype(np.float32) for _ in range(20)]
    w = [np.float32(v) for v in rng.uniform(0, 2, 20)]
    c = np.array([1, 2, 3], np.float32)
    want = run("reference", mixed, x, c, w)
    leaf_calls.clear()
    found = run("fast", mixed, x, c, w)
    assert_same(want, found)
    assert sum(leaf_calls.values()) == 0
    assert [type(loop).__name__ for loop in lowering.compiled_loops(scaled.ir.computation)] \
        == ["_GroupFunction"]


@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_min_and_max_accumulate_in_the_compiled_loop(dtype, leaf_calls):
    value_type = fcore.TensorType(dtype, [3])

    @fcore.tf_computation(value_type, value_type)
    def shifted(x, offset):
        return x - offset

    @fcore.federated_computation(fcore.FederatedType(value_type, fcore.CLIENTS),
                                 fcore.FederatedType(value_type, fcore.SERVER))
    def extremes(values, offset):
        moved = fcore.federated_map(shifted, (values, fcore.federated_broadcast(offset)))
        return fcore.federated_min(moved), fcore.federated_max(moved)

    rng = np.random.default_rng(1)
    values = [rng.integers(-50, 50, 3).astype(dtype) for _ in range(30)]
    if dtype == np.float32:
        values[7] = np.array([np.nan, 1, 2], np.float32)  # NaN propagates, as in NumPy
    offset = np.ones(3, dtype)
    with fcore.execution_context("reference"):
        expected = extremes(values, offset)
    leaf_calls.clear()
    with fcore.execution_context("fast"):
        found = extremes(values, offset)
    assert leaf_calls["shifted"] == 0  # the 30 clients ran in the compiled loop
    for a, b in zip(expected, found):
        np.testing.assert_array_equal(a, b)
    stacked = np.stack(values) - offset
    np.testing.assert_array_equal(found[0], np.minimum.reduce(stacked))
    np.testing.assert_array_equal(found[1], np.maximum.reduce(stacked))


INT3 = fcore.TensorType(np.int32, [3])


@fcore.tf_computation(INT3, INT3)
def shifted_ints(values, offset):
    return values - offset


@fcore.federated_computation(fcore.FederatedType(INT3, fcore.CLIENTS),
                             fcore.FederatedType(INT3, fcore.SERVER))
def secure_sums(values, offset):
    moved = fcore.federated_map(shifted_ints, (values, fcore.federated_broadcast(offset)))
    return fcore.federated_secure_sum_bitwidth(moved, 8), fcore.federated_secure_sum(moved, 200)


def test_secure_sums_accumulate_in_the_compiled_loop(leaf_calls):
    rng = np.random.default_rng(2)
    values = [rng.integers(10, 200, 3).astype(np.int32) for _ in range(30)]
    offset = np.full(3, 10, np.int32)
    with fcore.execution_context("reference"):
        expected = secure_sums(values, offset)
    leaf_calls.clear()
    with fcore.execution_context("fast"):
        found = secure_sums(values, offset)
    assert leaf_calls["shifted_ints"] == 0
    for a, b in zip(expected, found):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(found[1], (np.stack(values) - offset).sum(0))


def test_an_out_of_range_secure_sum_input_is_reported_as_the_reference_reports_it(leaf_calls):
    values = [np.array([20, 30, 40], np.int32)] * 29 + [np.array([5, 30, 40], np.int32)]
    offset = np.full(3, 10, np.int32)  # the last client's value becomes -5
    messages = []
    for executor in ("reference", "fast"):
        with fcore.execution_context(executor), pytest.raises(fcore.ExecutionError) as error:
            secure_sums(values, offset)
        messages.append(str(error.value))
    assert messages[0] == messages[1]
    assert "client 29" in messages[1] and "outside [0, 255]" in messages[1]


def test_a_loaded_computation_compiles_its_per_client_passes(leaf_calls):
    """A leaf loaded from bytes (as Dask workers load the client program) has no Python to
    trace; without sequences its saved function is the loop's leaf."""
    from fcore import serialization
    loaded = serialization.from_bytes(serialization.to_bytes(spread))
    data, center = points(40, seed=21), points(1, seed=22)[0]
    leaf_calls.clear()
    assert_same(run("reference", spread, data, center), run("fast", loaded, data, center))
    assert leaf_calls["sq_dist"] == 0
    (leaf,) = loaded.leaves().values()
    assert lowering.compiled_loops(leaf)


@fcore.tf_computation(TensorType(np.float32))
def checked_sqrt(x):
    tf.debugging.assert_less(x, np.float32(1e4), message="too far from the center")
    return tf.sqrt(x)


@fcore.federated_computation(FederatedType(VECTOR, CLIENTS), FederatedType(VECTOR, SERVER))
def root_spread(points, center):
    """A step after the leaf that is a lambda calling a TF leaf with an assertion."""
    c = fcore.federated_broadcast(center)
    distances = fcore.federated_map(sq_dist, fcore.federated_zip((points, c)))
    roots = fcore.federated_map(
        fcore.federated_computation(lambda d: checked_sqrt(d), TensorType(np.float32)),
        distances)
    return fcore.federated_mean(roots)


def test_a_lambda_step_runs_in_the_loop_and_its_assertions_hold(leaf_calls):
    data, center = points(40, seed=23), points(1, seed=24)[0]
    leaf_calls.clear()
    found = run("fast", root_spread, data, center)
    assert_same(run("reference", root_spread, data, center), found)
    assert leaf_calls["checked_sqrt"] == 0  # the lambda's leaf ran in the compiled loop
    (loop,) = [loop for loop in lowering.compiled_loops(sq_dist.ir.computation)
               if checked_sqrt.ir.computation in loop.plan.post_leaves]
    assert not loop.jit  # XLA would drop the assertion: a plain graph
    data[31] = data[31] + 10.0  # about 2e5 from the center: the assertion fails
    messages = []
    for kind in ("reference", "fast"):
        with pytest.raises(fcore.ExecutionError) as error:
            run(kind, root_spread, data, center)
        messages.append(str(error.value).splitlines()[0])
    assert messages[0] == messages[1] and "client 31" in messages[1]
    # the failure was this round's data: the next round runs compiled again
    data[31] = data[31] - 10.0
    leaf_calls.clear()
    assert_same(run("reference", root_spread, data, center),
                run("fast", root_spread, data, center))
    assert leaf_calls["checked_sqrt"] == 0 and leaf_calls["sq_dist"] == 0


def test_a_leaf_whose_shapes_depend_on_a_broadcast_value_runs_as_a_plain_graph(leaf_calls):
    """XLA would take the broadcast value as a compile-time constant (a shape is computed
    from it) and compile again for each new value, every round: the loop runs as a plain
    graph instead, with the same results."""
    @fcore.tf_computation(TensorType(np.float32, [3]), TensorType(np.int32))
    def ones_for(x, k):
        return tf.reduce_sum(tf.ones(tf.stack([k, 2]))) + x[1]

    @fcore.federated_computation(FederatedType(TensorType(np.float32, [3]), CLIENTS),
                                 FederatedType(TensorType(np.int32), SERVER))
    def f(xs, k):
        return fcore.federated_sum(fcore.federated_map(
            ones_for, fcore.federated_zip((xs, fcore.federated_broadcast(k)))))

    rng = np.random.default_rng(21)
    data = [rng.normal(size=3).astype(np.float32) for _ in range(20)]
    for k in (3, 5):
        leaf_calls.clear()
        np.testing.assert_allclose(run("fast", f, data, np.int32(k)),
                                   sum(2 * k + x[1] for x in data), rtol=1e-5)
        assert leaf_calls["ones_for"] == 0
    (loop,) = lowering.compiled_loops(ones_for.ir.computation)
    assert loop.checked and len(loop.functions) == 1  # XLA dropped, the plain graph kept
    assert lowering._constant_arguments(loop.traced[0], [np.int32(3)], (
        [lowering._stacked(data, 24)], np.int32(20)))


def test_xla_takes_every_input_of_an_ordinary_loop_as_an_argument():
    run("fast", spread, points(40, seed=22), points(1, seed=23)[0])
    loops = lowering.compiled_loops(sq_dist.ir.computation)
    jitted = [loop for loop in loops if loop.jit]
    assert jitted
    assert loops and all(loop.checked and len(loop.functions) == 2  # XLA kept
                         for loop in loops if loop.jit)
