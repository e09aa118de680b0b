"""Clients whose batches differ only in size share one compiled loop: their batches are
padded and each client's real sizes become XLA dynamic dimensions (`fcore.execution.padding`).
Each op the padder is trusted with is checked here against eager TensorFlow; leaves with
other ops keep one loop per shape; results are checked against NumPy."""

import collections

import numpy as np
import pytest
import tensorflow as tf

import fcore
from fcore import CLIENTS, SERVER, FederatedType, SequenceType, TensorType
from fcore.execution import lowering, padding

from support import assert_same, run

PADDED = 12  # the padded batch size of the op cases (sizes 1..12 fit it)


def _elementwise(x):
    a = tf.abs(x) + 0.5
    y = (tf.math.log(a) + tf.math.log1p(a) + tf.sqrt(a) + tf.math.rsqrt(a) + tf.square(x) +
         tf.math.reciprocal(a) + tf.exp(-a) - tf.sign(x) * tf.floor(x) + a ** 2.5 +
         tf.math.squared_difference(x, 1.0) + tf.math.floormod(x, 0.7) +
         tf.math.divide_no_nan(x, a) + tf.maximum(x, 0.1) - tf.minimum(x, -0.1) + x / a)
    y = tf.identity(y) + tf.stop_gradient(-x)
    flags = tf.logical_or(tf.logical_and(tf.equal(x, x), tf.not_equal(x, 0.0)),
                          tf.logical_not(tf.math.is_finite(x)))
    flags = tf.logical_or(flags, tf.math.is_nan(x))
    compared = (tf.cast(x < 0, tf.float32) + tf.cast(x <= 0, tf.float32) +
                tf.cast(x > 0, tf.float32) + tf.cast(x >= 0, tf.float32))
    bits = tf.cast(tf.bitwise.bitwise_and(tf.bitcast(x, tf.int32), 0xFF), tf.float32)
    y = tf.where(flags, y, -y) + compared + bits + tf.zeros_like(x) + tf.ones_like(x)
    return tf.reduce_sum(y, 0)


def _activations_and_gradients(x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        a = tf.abs(x) + 0.5
        y = (tf.nn.relu(x) + tf.nn.relu6(x * 4) + tf.nn.elu(x) + tf.nn.selu(x) +
             tf.nn.softplus(x) + tf.sigmoid(x) + tf.tanh(x) + tf.math.rsqrt(a) + tf.sqrt(a))
        total = tf.reduce_sum(y * y)
    return tf.reduce_sum(tape.gradient(total, x), 0)


def _dense(x):
    w = tf.reshape(tf.range(12.0), [4, 3]) / 10
    b = tf.constant([0.1, -0.2, 0.3])
    with tf.GradientTape() as tape:
        tape.watch([w, b])
        h = tf.nn.bias_add(tf.matmul(x, w), b)
        m = tf.matmul(tf.expand_dims(h, 2), tf.expand_dims(h, 1))  # BatchMatMulV2
        loss = tf.reduce_mean(h) + tf.reduce_sum(m)
    gw, gb = tape.gradient(loss, [w, b])
    return tf.concat([tf.reshape(gw, [-1]), gb], 0)


def _reductions(x):
    return tf.stack([tf.reduce_sum(x), tf.reduce_mean(x), tf.reduce_max(x), tf.reduce_min(x),
                     tf.reduce_prod(x * 0.1 + 1),
                     tf.cast(tf.reduce_all(x > -3.0), tf.float32),
                     tf.cast(tf.reduce_any(x > 1.0), tf.float32),
                     tf.cast(tf.reduce_sum(tf.argmax(x, 0)), tf.float32),
                     tf.cast(tf.reduce_sum(tf.argmin(x, 0)), tf.float32)])


def _losses(x):
    labels = tf.cast(tf.abs(x[:, 0]) * 3, tf.int32) % 4
    return tf.stack([
        tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, x)),
        tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(tf.nn.softmax(x * 0.3), x)),
        tf.reduce_sum(tf.nn.log_softmax(x))])


def _layout(x):
    n = tf.cast(tf.shape(x)[0], tf.float32) + tf.cast(tf.size(x), tf.float32)
    y = tf.transpose(tf.reshape(x, [-1, 2, 2]), [0, 2, 1])
    y = tf.squeeze(tf.expand_dims(tf.reshape(y, [-1, 4]), 1), 1)
    y = tf.concat([y, tf.reverse(y, [0]), tf.tile(y, [2, 1])], 0)
    y = tf.pad(tf.stack([y, y * 2], 1), [[1, 1], [0, 0], [0, 0]])
    z = tf.broadcast_to(x[:, :1], tf.shape(x))
    return tf.concat([tf.reduce_sum(y, [0, 1]), tf.reduce_sum(z, 0), [n]], 0)


def _convolutions(x):
    image = tf.reshape(x, [-1, 2, 2, 1])
    kernel = tf.reshape(tf.range(8.0), [2, 2, 1, 2]) / 8
    with tf.GradientTape() as tape:
        tape.watch([image, kernel])
        y = tf.nn.conv2d(image, kernel, 1, "SAME")
        y = tf.nn.max_pool2d(y, 2, 1, "SAME") + tf.nn.avg_pool2d(y, 2, 1, "SAME")
        loss = tf.reduce_sum(y * y)
    g_image, g_kernel = tape.gradient(loss, [image, kernel])
    return tf.concat([tf.reshape(tf.reduce_sum(g_image, 0), [-1]), tf.reshape(g_kernel, [-1])], 0)


def _lookups(x):
    ids = tf.cast(tf.abs(x) * 3, tf.int32) % 10
    table = tf.reshape(tf.range(40.0), [10, 4])
    return tf.concat([tf.reduce_sum(tf.gather(table, ids), [0, 1]),
                      tf.reduce_sum(tf.one_hot(ids[:, 0], 4), 0)], 0)


CASES = [_elementwise, _activations_and_gradients, _dense, _reductions, _losses, _layout,
         _convolutions, _lookups]
SPEC = tf.TensorSpec([None, 4], tf.float32)


def _dynamic_input_ops(fn):
    graph = tf.function(fn).get_concrete_function(SPEC).graph
    return {op.type for op in graph.get_operations()
            if any(not t.shape.is_fully_defined() for t in op.inputs)}


def test_every_trusted_op_is_checked_here():
    """Each op of `DYNAMIC_OPS` and `CHECKED_OPS` takes a tensor of unknown size in one of
    the cases below, and every case passes the check (`accepts_dynamic`)."""
    seen = set()
    for fn in CASES:
        seen |= _dynamic_input_ops(fn)
        assert padding.accepts_dynamic(tf.function(fn).get_concrete_function(SPEC)), fn
    assert (set(padding.DYNAMIC_OPS) | set(padding.CHECKED_OPS)) - seen == set()


@pytest.mark.parametrize("xla", [True, False])
@pytest.mark.parametrize("fn", CASES, ids=lambda fn: fn.__name__)
def test_padded_inputs_at_their_sizes_compute_as_unpadded(fn, xla):
    """Under XLA (dynamic dimensions) and in a plain graph (slices), a padded batch at its
    real size gives the unpadded batch's result; the padding rows are large, so any leak
    would show."""
    def padded(value, sizes):
        return fn(padding.with_sizes(value, (0,), sizes, xla))
    compiled = tf.function(padded, jit_compile=xla)
    rng = np.random.default_rng(0)
    for size in (1, 2, 3, 5, 8, PADDED):
        x = rng.normal(size=(size, 4)).astype(np.float32)
        junk = rng.normal(size=(PADDED - size, 4)).astype(np.float32) * 100 + 50
        found = compiled(np.concatenate([x, junk]), np.array([size], np.int32))
        np.testing.assert_allclose(found, fn(tf.constant(x)), rtol=2e-5, atol=2e-5,
                                   err_msg=f"{fn.__name__} at size {size}")


@pytest.mark.parametrize("fn", [
    lambda x: tf.cumsum(x, 0),  # wrong under the padder
    lambda x: x[-1],            # a slice from the end: wrong
    lambda x: x[1:],            # slices along a padded dimension are not trusted
    lambda x: tf.unique(x[:, 0])[0],
    lambda x: tf.scan(lambda a, r: a + r, x)[-1],
], ids=["cumsum", "last_row", "tail", "unique", "scan"])
def test_leaves_the_padder_gets_wrong_are_not_padded(fn):
    assert not padding.accepts_dynamic(tf.function(fn).get_concrete_function(SPEC))


def test_padded_stack_pads_only_the_dimensions_that_differ():
    arrays = [np.ones((n, 3), np.float32) * n for n in (2, 5, 1)]
    stacked, dims, sizes = padding.padded_stack(arrays, 4, np.empty)
    assert dims == (0,) and stacked.shape == (4, 8, 3)
    assert sizes[:, 0].tolist() == [2, 5, 1, 0]
    for row, n in enumerate((2, 5, 1)):
        assert (stacked[row, :n] == n).all() and (stacked[row, n:] == 0).all()
    assert not stacked[3].any()
    assert padding.padded_stack([np.ones((2, 3))] * 3, 4, np.empty)[1] == ()
    assert [padding.bucket(n) for n in (1, 8, 9, 12, 13, 100)] == [8, 8, 12, 12, 16, 128]


WEIGHTS = TensorType(np.float32, [3])
BATCHES = SequenceType(collections.OrderedDict(x=TensorType(np.float32, [None, 3]),
                                               y=TensorType(np.float32, [None])))


def _sgd_step(state, batch):
    """One SGD step (learning rate 0.1) of a linear regression's mean squared error, and
    the examples counted."""
    w, n = state
    error = tf.linalg.matvec(batch["x"], w) - batch["y"]
    grad = 2 * tf.linalg.matvec(batch["x"], error, transpose_a=True) / tf.cast(
        tf.shape(error)[0], tf.float32)
    return w - 0.1 * grad, n + tf.cast(tf.shape(error)[0], tf.float32)


@fcore.tf_computation(WEIGHTS, BATCHES)
def sgd(w, batches):
    """An SGD step per batch; returns the final weights and the number of examples."""
    return batches.reduce((w, tf.constant(0.0)), _sgd_step)


@fcore.tf_computation(WEIGHTS, BATCHES)
def sgd_checked(w, batches):
    """`sgd`, asserting that no batch is empty (XLA drops asserts: this loop runs as a plain
    graph, where padded batches are sliced)."""
    def step(state, batch):
        tf.debugging.assert_positive(tf.shape(batch["y"])[0], "a batch must not be empty")
        return _sgd_step(state, batch)
    return batches.reduce((w, tf.constant(0.0)), step)


@fcore.tf_computation(WEIGHTS, BATCHES)
def running_sums(w, batches):
    """A leaf with a cumulative sum over the batch (which the padder gets wrong)."""
    return batches.reduce(w, lambda w, b: w + tf.reduce_sum(tf.cumsum(b["x"], 0), 0))


@fcore.tf_computation(BATCHES)
def count_examples(batches):
    return batches.reduce(tf.constant(0.0), lambda n, b: n + tf.cast(tf.shape(b["y"])[0],
                                                                     tf.float32))


def _round(leaf):
    @fcore.federated_computation(FederatedType(WEIGHTS, SERVER), FederatedType(BATCHES, CLIENTS))
    def round_(w, data):
        out = fcore.federated_map(leaf, fcore.federated_zip((fcore.federated_broadcast(w),
                                                             data)))
        return fcore.federated_mean(out[0], out[1])
    return round_


def _clients(count, seed=0):
    """Two batches per client: 4 examples, then 1 to 4 (a partial last batch)."""
    rng = np.random.default_rng(seed)
    data = []
    for _ in range(count):
        sizes = (4, int(rng.integers(1, 5)))
        data.append([collections.OrderedDict(x=rng.normal(size=(n, 3)).astype(np.float32),
                                             y=rng.normal(size=n).astype(np.float32))
                     for n in sizes])
    return data


def _oracle(w, data):
    """NumPy: each client's SGD steps, then the mean weighted by examples."""
    finals, weights = [], []
    for batches in data:
        v = w.astype(np.float64)
        for batch in batches:
            x, y = batch["x"].astype(np.float64), batch["y"].astype(np.float64)
            v = v - 0.1 * 2 * x.T @ (x @ v - y) / len(y)
        finals.append(v)
        weights.append(sum(len(b["y"]) for b in batches))
    return np.average(finals, axis=0, weights=weights)


W0 = np.array([0.5, -1.0, 2.0], np.float32)


@pytest.mark.parametrize("leaf", [sgd, sgd_checked], ids=["xla", "plain_graph"])
def test_clients_with_partial_batches_share_one_loop(leaf, leaf_calls):
    data = _clients(40)
    want = _oracle(W0, data)
    found = run("fast", _round(leaf), W0, data)
    np.testing.assert_allclose(found, want, rtol=1e-5, atol=1e-5)
    assert_same(run("reference", _round(leaf), W0, data), found)
    assert leaf_calls[leaf.name] == 0
    (loop,) = lowering.compiled_loops(leaf.ir.computation)
    assert [entry[0] for entry in loop.layout] == ["shared", "stacked", "stacked",
                                                   "padded", "padded"]
    # the loop kept its first form: XLA for `sgd`, a plain graph for the asserting leaf
    assert len(loop.functions) == (2 if leaf is sgd else 1)


def test_a_new_round_with_other_sizes_reuses_the_loop(leaf_calls):
    leaf = sgd.ir.computation
    run("fast", _round(sgd), W0, _clients(40, seed=1))
    loops = lowering.compiled_loops(leaf)
    traced = [f.experimental_get_tracing_count() for loop in loops for f in loop.traced]
    for seed in (2, 3):  # other partial batches (padded to the same size), as many clients
        data = _clients(40, seed=seed)
        np.testing.assert_allclose(run("fast", _round(sgd), W0, data), _oracle(W0, data),
                                   rtol=1e-5, atol=1e-5)
    assert lowering.compiled_loops(leaf) == loops
    assert [f.experimental_get_tracing_count() for loop in loops for f in loop.traced] == traced


def test_a_leaf_the_padder_gets_wrong_is_compiled_per_shape(leaf_calls):
    data = _clients(60, seed=4)
    want = W0 + np.mean([sum(np.cumsum(b["x"], 0).sum(0) for b in c) for c in data], 0)

    @fcore.federated_computation(FederatedType(WEIGHTS, SERVER), FederatedType(BATCHES, CLIENTS))
    def sums(w, data):
        out = fcore.federated_map(running_sums, fcore.federated_zip(
            (fcore.federated_broadcast(w), data)))
        return fcore.federated_mean(out)
    found = run("fast", sums, W0, data)
    np.testing.assert_allclose(found, want, rtol=1e-5)
    loops = lowering.compiled_loops(running_sums.ir.computation)
    # one traced loop, compiled by XLA for each shape, with nothing padded
    assert loops and all(entry[0] != "padded" for loop in loops for entry in loop.layout)


def test_datasets_with_partial_last_batches_match_numpy(leaf_calls):
    rng = np.random.default_rng(5)
    datasets, lists = [], []
    for _ in range(24):
        n = int(rng.integers(5, 12))  # batches of 4: the last has 1 to 4 examples
        x, y = rng.normal(size=(n, 3)).astype(np.float32), rng.normal(size=n).astype(np.float32)
        datasets.append(tf.data.Dataset.from_tensor_slices(
            collections.OrderedDict(x=x, y=y)).batch(4))
        lists.append([collections.OrderedDict(x=x[i:i + 4], y=y[i:i + 4])
                      for i in range(0, n, 4)])
    found = run("fast", _round(sgd), W0, datasets)
    np.testing.assert_allclose(found, _oracle(W0, lists), rtol=1e-5, atol=1e-5)
    assert leaf_calls["sgd"] == 0


@pytest.fixture(scope="module")
def dask_client():
    pytest.importorskip("distributed")
    from support import local_cluster
    yield from local_cluster()


def test_partial_batches_on_dask_match_numpy(dask_client):
    """The workers run the saved client program, whose loaded leaf pads the same way."""
    data = _clients(40, seed=6)
    with fcore.execution_context(dask=dask_client):
        found = _round(sgd)(W0, data)
    np.testing.assert_allclose(found, _oracle(W0, data), rtol=1e-5, atol=1e-5)
    from fcore.execution import distributed as fcore_distributed
    assert fcore_distributed.last_report["chunks"] >= 1  # the pass ran on the workers


# Generated leaves: a random chain of trusted ops per batch, summed over the client's batches,
# on clients whose batches have random sizes; checked against the same chain in NumPy.

_W = np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(3, 4)


def _np_softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# (name, TF op on a [n, 4] batch -> [n, 4], NumPy twin)
_ROW_OPS = [
    ("relu", tf.nn.relu, lambda z: np.maximum(z, 0)),
    ("tanh", tf.tanh, np.tanh),
    ("softmax", tf.nn.softmax, _np_softmax),
    ("centred", lambda z: z - tf.reduce_mean(z, 0), lambda z: z - z.mean(0)),
    ("scaled_by_count", lambda z: z * tf.cast(tf.shape(z)[0], tf.float32),
     lambda z: z * len(z)),
    ("square", tf.square, np.square),
]
# (name, TF reduction of a [n, 4] batch -> [4], NumPy twin)
_REDUCTIONS = [
    ("sum", lambda z: tf.reduce_sum(z, 0), lambda z: z.sum(0)),
    ("mean", lambda z: tf.reduce_mean(z, 0), lambda z: z.mean(0)),
    ("max", lambda z: tf.reduce_max(z, 0), lambda z: z.max(0)),
    ("min", lambda z: tf.reduce_min(z, 0), lambda z: z.min(0)),
    ("gram", lambda z: tf.reduce_sum(tf.matmul(z, z, transpose_a=True), 0),
     lambda z: (z.T @ z).sum(0)),
]


def _generated_round(chain, reduction):
    batches = SequenceType(TensorType(np.float32, [None, 3]))

    @fcore.tf_computation(batches)
    def leaf(ds):
        def add(total, x):
            z = tf.matmul(x, _W)
            for _, op, _ in chain:
                z = op(z)
            return total + reduction[1](z)
        return ds.reduce(tf.zeros([4]), add)

    def oracle(x):
        z = x.astype(np.float64) @ _W.astype(np.float64)
        for _, _, op in chain:
            z = op(z)
        return reduction[2](z)

    comp = fcore.federated_computation(
        lambda data: fcore.federated_sum(fcore.federated_map(leaf, data)),
        FederatedType(batches, CLIENTS))
    return comp, leaf, oracle


def test_generated_leaves_on_padded_batches_match_numpy():
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=25, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(chain=st.lists(st.sampled_from(_ROW_OPS), max_size=3),
           reduction=st.sampled_from(_REDUCTIONS),
           batches=st.integers(1, 3),
           sizes=st.lists(st.integers(1, 7), min_size=8, max_size=14),
           seed=st.integers(0, 2**16))
    def check(chain, reduction, batches, sizes, seed):
        comp, leaf, oracle = _generated_round(chain, reduction)
        rng = np.random.default_rng(seed)
        data = [[rng.normal(size=(7, 3)).astype(np.float32) for _ in range(batches - 1)] +
                [rng.normal(size=(n, 3)).astype(np.float32)] for n in sizes]
        want = sum(oracle(x) for client in data for x in client)
        found = run("fast", comp, data)
        np.testing.assert_allclose(found, want, rtol=2e-4, atol=2e-4,
                                   err_msg=f"{[c[0] for c in chain]} then {reduction[0]}")
        if len(set(sizes)) > 1:  # batches of different sizes: one padded loop
            assert any(entry[0] == "padded" for loop in lowering.compiled_loops(leaf.ir.computation)
                       for entry in loop.layout)
    check()
