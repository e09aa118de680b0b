"""Programs that fcore once accepted and answered wrongly (issue 9), each with its right
answer worked out by hand or with NumPy. Each runs on the reference and fast executors, and
where it says so after print -> parse and save -> load."""

import collections

import numpy as np
import pytest
import tensorflow as tf

import fcore

od = collections.OrderedDict
EXECUTORS = ["reference", "fast"]
F32_CLIENTS = fcore.FederatedType(tf.float32, fcore.CLIENTS)
I32_CLIENTS = fcore.FederatedType(tf.int32, fcore.CLIENTS)


def run(kind, computation, *args, num_clients=None):
    with fcore.execution_context(kind, num_clients=num_clients):
        return computation(*args)


def variants(computation, tmp_path):
    """The computation, its printed text parsed back, and it saved and loaded."""
    parsed = fcore.parse_computation(str(computation), computation.leaves())
    assert parsed == computation
    path = tmp_path / "c.fcore"
    fcore.save(computation, str(path))
    return [computation, parsed, fcore.load(str(path))]


add = fcore.tf_computation(lambda a, b: a + b, tf.float32, tf.float32)
double = fcore.tf_computation(lambda a: 2 * a, tf.float32)


# 1. Name capture in nested computations --------------------------------------------------

@fcore.federated_computation(tf.float32, fcore.SequenceType(tf.float32))
def offset_sum(offset, xs):
    @fcore.federated_computation(tf.float32, tf.float32)
    def step(acc, x):
        return add(acc, add(x, offset))
    return fcore.sequence_reduce(xs, 0.0, step)


@fcore.federated_computation(tf.float32, fcore.SequenceType(tf.float32))
def local_sum(offset, xs):
    d = double(offset)

    @fcore.federated_computation(tf.float32, tf.float32)
    def step(acc, x):
        return add(acc, add(x, d))
    return fcore.sequence_reduce(xs, 0.0, step)


@pytest.mark.parametrize("kind", EXECUTORS)
def test_nested_computation_sees_the_outer_parameter(kind, tmp_path):
    for computation in variants(offset_sum, tmp_path):
        assert run(kind, computation, 10.0, [1.0, 2.0]) == 23.0


@pytest.mark.parametrize("kind", EXECUTORS)
def test_nested_computation_sees_an_outer_local(kind, tmp_path):
    for computation in variants(local_sum, tmp_path):
        assert run(kind, computation, 10.0, [1.0, 2.0]) == 43.0  # 0 + (1+20) + (2+20)


def test_traced_names_are_unique_in_the_whole_computation():
    from fcore.ir import nodes
    binders = []

    def walk(node):
        if isinstance(node, nodes.Lambda) and node.parameter_name is not None:
            binders.append(node.parameter_name)
        if isinstance(node, nodes.Block):
            binders.extend(name for name, _ in node.locals)
        for child in node.children():
            walk(child)
    walk(local_sum.ir)
    assert len(binders) == len(set(binders)), binders


MODEL = od(weights=fcore.TensorType(np.float32, [3, 2]), bias=fcore.TensorType(np.float32, [2]))
BATCH = od(x=fcore.TensorType(np.float32, [None, 3]), y=fcore.TensorType(np.int32, [None]))


def _loss(model, batch):
    logits = tf.matmul(batch["x"], model["weights"]) + model["bias"]
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(batch["y"], logits))


@fcore.tf_computation(MODEL, BATCH, tf.float32)
def batch_train(initial_model, batch, learning_rate):
    model = od((k, tf.identity(v)) for k, v in initial_model.items())
    with tf.GradientTape() as tape:
        tape.watch(list(model.values()))
        loss = _loss(model, batch)
    grads = tape.gradient(loss, model)
    return od((k, model[k] - learning_rate * grads[k]) for k in model)


@fcore.federated_computation(MODEL, tf.float32, fcore.SequenceType(BATCH))
def local_train(initial_model, learning_rate, all_batches):
    # TFF's "Custom Federated Algorithms, part 2": the batch function closes over the
    # outer `learning_rate`.
    @fcore.federated_computation(MODEL, BATCH)
    def batch_fn(model, batch):
        return batch_train(model, batch, learning_rate)
    return fcore.sequence_reduce(all_batches, initial_model, batch_fn)


def _numpy_local_train(model, learning_rate, batches):
    weights, bias = model["weights"].astype(np.float64), model["bias"].astype(np.float64)
    for batch in batches:
        x, y = batch["x"].astype(np.float64), batch["y"]
        logits = x @ weights + bias
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(len(y)), y] -= 1
        p /= len(y)
        weights, bias = weights - learning_rate * x.T @ p, bias - learning_rate * p.sum(axis=0)
    return weights, bias


@pytest.mark.parametrize("kind", EXECUTORS)
def test_tff_part_2_local_train(kind, tmp_path):
    rng = np.random.default_rng(0)
    model = od(weights=rng.normal(size=(3, 2)).astype(np.float32),
               bias=np.zeros(2, np.float32))
    batches = [od(x=rng.normal(size=(n, 3)).astype(np.float32),
                  y=rng.integers(0, 2, n).astype(np.int32)) for n in (4, 5, 3)]
    weights, bias = _numpy_local_train(model, 0.1, batches)
    for computation in variants(local_train, tmp_path):
        result = run(kind, computation, model, 0.1, batches)
        np.testing.assert_allclose(result["weights"], weights, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(result["bias"], bias, rtol=1e-5, atol=1e-6)


# 2. Dataset elements whose dict keys are not sorted ---------------------------------------

UNSORTED = od(b=tf.int32, a=tf.int32)


@fcore.tf_computation(fcore.SequenceType(UNSORTED))
def weighted_total(ds):
    return ds.reduce(0, lambda s, e: s + e["a"] - 10 * e["b"])


@fcore.federated_computation(fcore.SequenceType(UNSORTED))
def call_weighted_total(ds):
    return weighted_total(ds)


@pytest.mark.parametrize("kind", EXECUTORS)
def test_dataset_with_unsorted_keys(kind, tmp_path):
    ds = tf.data.Dataset.from_tensor_slices(od(b=np.array([1, 2], np.int32),
                                               a=np.array([100, 200], np.int32)))
    for computation in variants(call_weighted_total, tmp_path):
        assert run(kind, computation, ds) == 300 - 30


# 3. Named structs bind to parameters by name ----------------------------------------------

@pytest.mark.parametrize("kind", EXECUTORS)
def test_federated_map_binds_a_named_struct_by_name(kind):
    @fcore.federated_computation(I32_CLIENTS, I32_CLIENTS)
    def difference(x, y):
        return fcore.federated_map(fcore.tf_computation(lambda w, v: w - v), {"v": y, "w": x})
    assert run(kind, difference, [10], [1]) == [9]


@pytest.mark.parametrize("kind", EXECUTORS)
def test_polymorphic_computation_called_with_a_dict(kind):
    first = fcore.federated_computation(lambda a, b: a)
    assert run(kind, first, {"b": 1, "a": 2}) == 2
    subtract = fcore.tf_computation(lambda a, b: a - b)
    assert run(kind, subtract, {"b": 1, "a": 10}) == 9


@pytest.mark.parametrize("kind", EXECUTORS)
def test_declared_struct_in_another_order_binds_by_name(kind):
    @fcore.federated_computation(od(b=tf.int32, a=tf.int32))
    def f(a, b):
        return fcore.tf_computation(lambda p, q: p - q, tf.int32, tf.int32)(a, b)
    assert run(kind, f, od(b=1, a=10)) == 9
    g = fcore.tf_computation(lambda a, b: a - 2 * b, od(a=tf.int32, b=tf.int32))
    assert run(kind, g, od(a=10, b=1)) == 8
    h = fcore.tf_computation(lambda a, b: a - 2 * b, od(b=tf.int32, a=tf.int32))
    assert run(kind, h, od(b=1, a=10)) == 8


def test_a_struct_name_that_is_no_parameter_is_an_error():
    with pytest.raises(TypeError, match="no parameter named 'x'"):
        fcore.federated_computation(lambda a, b: a, od(x=tf.int32, y=tf.int32))


# 4. Rebinding a name in a text `let` ------------------------------------------------------

@pytest.mark.parametrize("kind", EXECUTORS)
def test_let_rebinding_keeps_earlier_bindings(kind):
    c = fcore.parse_computation("(x:int32 -> (let b=x,x=2 in b))")
    assert run(kind, c, 5) == 5
    shadow = fcore.parse_computation(
        "(x:{int32}@CLIENTS -> (let x=federated_sum(x),y=(x:int32 -> x) in <x,y(3)>))")
    assert run(kind, shadow, [1, 2]) == (3, 3)


# 5. Client work runs once per client ------------------------------------------------------

@pytest.mark.parametrize("kind", EXECUTORS)
def test_client_work_runs_once(kind):
    runs = []

    @fcore.tf_computation(tf.float32)
    def noisy(x):
        return x + tf.random.uniform([])
    leaf = noisy.ir.computation
    original = leaf.run

    def counted(*args, **kwargs):
        runs.append(1)
        return original(*args, **kwargs)
    leaf.run = counted

    @fcore.federated_computation(F32_CLIENTS)
    def f(x):
        m = fcore.federated_map(noisy, x)
        return fcore.federated_sum(m), m

    total, members = run(kind, f, [1.0, 2.0, 3.0])
    assert len(runs) == 3
    np.testing.assert_allclose(total, sum(members), rtol=1e-6)


@pytest.mark.parametrize("kind", EXECUTORS)
def test_client_values_used_in_a_later_pass_are_not_recomputed(kind):
    @fcore.tf_computation(tf.float32)
    def noisy(x):
        return x + tf.random.uniform([])

    @fcore.tf_computation(tf.float32, tf.float32)
    def centred(x, mean):
        return x - mean

    @fcore.federated_computation(F32_CLIENTS)
    def f(x):
        m = fcore.federated_map(noisy, x)
        mean = fcore.federated_mean(m)
        deviations = fcore.federated_map(centred, (m, fcore.federated_broadcast(mean)))
        return fcore.federated_sum(deviations)
    assert abs(run(kind, f, [1.0, 2.0, 3.0])) < 1e-5


# 6. An all-equal value given for a {T}@CLIENTS parameter ----------------------------------

@pytest.mark.parametrize("kind", EXECUTORS)
@pytest.mark.parametrize("dtype", [tf.float32, tf.int32])
def test_all_equal_value_for_a_clients_parameter(kind, dtype):
    times4 = fcore.tf_computation(lambda x: x * 4, fcore.TensorType(dtype, [3]))

    @fcore.federated_computation(fcore.FederatedType(fcore.TensorType(dtype, [3]),
                                                     fcore.CLIENTS))
    def inner(v):
        return fcore.federated_map(times4, v)

    @fcore.federated_computation(fcore.FederatedType(fcore.TensorType(dtype, [3]),
                                                     fcore.SERVER))
    def outer(s):
        return inner(fcore.federated_broadcast(s))
    result = run(kind, outer, np.array([1, 2, 3], dtype.as_numpy_dtype), num_clients=4)
    assert len(result) == 4
    for member in result:
        np.testing.assert_array_equal(member, [4, 8, 12])


# 7. Datasets cast to the parameter dtype are checked --------------------------------------

@fcore.tf_computation(fcore.SequenceType(tf.int32))
def int_total(ds):
    return ds.reduce(0, lambda a, b: a + b)


@pytest.mark.parametrize("kind", EXECUTORS)
def test_dataset_values_out_of_range_fail(kind):
    assert run(kind, int_total, tf.data.Dataset.range(3)) == 3  # int64 that fits: cast
    with pytest.raises(fcore.TypeMismatchError, match="out of the range of int32") as caught:
        run(kind, int_total, tf.data.Dataset.range(2**31 - 1, 2**31 + 1))
    assert isinstance(caught.value, fcore.ExecutionError)  # found while the data is read
    assert str(caught.value).startswith("Expected a value of type int32*")
    summed = fcore.federated_computation(lambda s: fcore.sequence_sum(s),
                                         fcore.SequenceType(tf.int32))
    with pytest.raises(fcore.TypeMismatchError, match="out of the range of int32"):
        run(kind, summed, tf.data.Dataset.range(2**31 - 1, 2**31 + 1))
    small = fcore.tf_computation(lambda ds: ds.reduce(np.int8(0), lambda a, b: a + b),
                                 fcore.SequenceType(tf.int8))
    with pytest.raises(fcore.TypeMismatchError, match="out of the range of int8"):
        run(kind, small, tf.data.Dataset.from_tensor_slices(np.array([200], np.uint8)))


@pytest.mark.parametrize("kind", EXECUTORS)
def test_complex_dataset_for_a_float_sequence_is_refused(kind):
    real = fcore.tf_computation(lambda ds: ds.reduce(0.0, lambda a, b: a + b),
                                fcore.SequenceType(tf.float32))
    data = tf.data.Dataset.from_tensor_slices(np.array([1 + 2j], np.complex64))
    with pytest.raises(fcore.TypeMismatchError, match="complex64"):
        run(kind, real, data)


# 8. Members of unknown length do not broadcast --------------------------------------------

VECTORS = fcore.FederatedType(fcore.TensorType(np.float32, [None]), fcore.CLIENTS)


@pytest.mark.parametrize("kind", EXECUTORS)
@pytest.mark.parametrize("intrinsic", [fcore.federated_sum, fcore.federated_mean,
                                       fcore.federated_max, fcore.federated_min])
def test_members_of_different_lengths_are_an_error(kind, intrinsic):
    f = fcore.federated_computation(lambda x: intrinsic(x), VECTORS)
    members = [np.array([1.0], np.float32), np.array([1.0, 2.0, 3.0], np.float32)]
    with pytest.raises(fcore.ExecutionError, match=r"shapes \(1,\) and \(3,\)"):
        run(kind, f, members)
    np.testing.assert_allclose(run(kind, f, [np.ones(2, np.float32)] * 2)[0], 1.0 if
                               intrinsic is not fcore.federated_sum else 2.0)


@pytest.mark.parametrize("kind", EXECUTORS)
def test_mapped_members_of_different_lengths_are_an_error(kind):
    grow = fcore.tf_computation(lambda x: tf.concat([x, x], 0),
                                fcore.TensorType(np.float32, [None]))
    f = fcore.federated_computation(lambda x: fcore.federated_sum(fcore.federated_map(grow, x)),
                                    VECTORS)
    with pytest.raises(fcore.ExecutionError, match="shapes"):
        run(kind, f, [np.ones(1, np.float32), np.ones(2, np.float32)])


@pytest.mark.parametrize("kind", EXECUTORS)
def test_sequence_sum_of_different_lengths_is_an_error(kind):
    f = fcore.federated_computation(lambda s: fcore.sequence_sum(s),
                                    fcore.SequenceType(fcore.TensorType(np.float32, [None])))
    with pytest.raises(fcore.ExecutionError, match="sequence_sum"):
        run(kind, f, [np.ones(1, np.float32), np.ones(3, np.float32)])


# 9. Names the grammar cannot read as they are ---------------------------------------------

@pytest.mark.parametrize("name", ["nan", "inf", "true", "false", "let", "in", "SERVER",
                                  "CLIENTS", "federated_sum", "dépôt"])
def test_names_print_so_that_they_parse_back(name):
    from fcore.ir import nodes
    programs = [
        nodes.Lambda(name, np.float32, nodes.Reference(name, np.float32)),
        nodes.Lambda("x", np.float32, nodes.Block([(name, nodes.Reference("x", np.float32))],
                                                  nodes.Reference(name, np.float32))),
    ]
    if fcore.types.core.NAME_PATTERN.match(name):
        programs.append(nodes.Lambda("x", np.float32, nodes.Struct(
            [(name, nodes.Reference("x", np.float32))])))
    for ir in programs:
        c = fcore.Computation(ir, "c")
        parsed = fcore.parse_computation(str(c))
        assert parsed == c
        assert str(parsed) == str(c)
        result = run("reference", parsed, 3.0)
        assert (result if np.ndim(result) == 0 and not isinstance(result, tuple)
                else result[name]) == 3.0


def test_python_parameters_named_like_literals():
    @fcore.federated_computation(tf.float32, tf.float32)
    def f(nan, true):
        return add(nan, true)
    text = str(f)
    assert fcore.parse_computation(text, f.leaves())(1.0, 2.0) == 3.0
    g = fcore.federated_computation(lambda inf: inf, tf.float32)
    assert fcore.parse_computation(str(g))(3.0) == 3.0


def test_leaf_with_a_non_ascii_name(tmp_path):
    def dépôt(x):
        return x + 1
    leaf = fcore.tf_computation(dépôt, tf.int32)
    c = fcore.federated_computation(lambda x: leaf(x), tf.int32)
    for computation in variants(c, tmp_path):
        assert computation(1) == 2


def test_quoted_names_in_text():
    c = fcore.parse_computation("(`nan`:float32 -> <`true`=`nan`,n=nan>)")
    result = c(2.0)
    assert result["true"] == 2.0 and np.isnan(result["n"])
    assert fcore.parse_computation(str(c)) == c


# 10. Compiled client loops are told apart by their aggregation ----------------------------

def test_compiled_loop_cache_tells_sum_from_mean():
    element = fcore.TensorType(np.float32, [2])

    @fcore.tf_computation(fcore.SequenceType(element))
    def total(ds):
        t = tf.zeros([2])
        for b in ds:
            t = t + b
        return t
    clients = fcore.FederatedType(fcore.SequenceType(element), fcore.CLIENTS)
    summed = fcore.federated_computation(
        lambda x: fcore.federated_sum(fcore.federated_map(total, x)), clients)
    averaged = fcore.federated_computation(
        lambda x: fcore.federated_mean(fcore.federated_map(total, x)), clients)
    data = [[np.full(2, i, np.float32)] for i in range(10)]  # enough to compile a group
    with fcore.execution_context("fast"):
        np.testing.assert_allclose(summed(data), [45, 45])
        np.testing.assert_allclose(averaged(data), [4.5, 4.5])


# 11. federated_aggregate: zero must be an identity of merge -------------------------------

def _aggregate_with(zero):
    plus = fcore.tf_computation(lambda a, b: a + b, tf.int32, tf.int32)
    report = fcore.tf_computation(lambda a: a, tf.int32)
    return fcore.federated_computation(
        lambda x: fcore.federated_aggregate(x, zero, plus, plus, report), I32_CLIENTS)


@pytest.mark.parametrize("kind", EXECUTORS)
def test_aggregate_zero_that_is_not_an_identity_is_an_error(kind):
    with pytest.raises(fcore.ExecutionError, match="zero must be an identity of merge"):
        run(kind, _aggregate_with(10), [1, 2, 3, 4])
    assert run(kind, _aggregate_with(0), [1, 2, 3, 4]) == 10


# 12. attrs classes, nested containers through federated_zip -------------------------------

@pytest.mark.parametrize("kind", EXECUTORS)
def test_attrs_classes_as_arguments_and_results(kind):
    attrs = pytest.importorskip("attrs")

    @attrs.define
    class Pair:
        a: object
        b: object
    pair_type = fcore.to_type(Pair(a=tf.int32, b=tf.float32))

    @fcore.tf_computation(pair_type)
    def step(p):
        return Pair(a=p.a + 1, b=p.b * 2)

    @fcore.federated_computation(fcore.FederatedType(pair_type, fcore.SERVER))
    def at_server(p):
        return fcore.federated_map(step, p)
    assert run(kind, step, Pair(a=1, b=2.0)) == Pair(a=2, b=4.0)
    assert run(kind, at_server, Pair(a=1, b=2.0)) == Pair(a=2, b=4.0)


@pytest.mark.parametrize("kind", EXECUTORS)
def test_zip_keeps_nested_python_containers(kind):
    @fcore.federated_computation(I32_CLIENTS, F32_CLIENTS)
    def z(a, b):
        return fcore.federated_zip(od(x=[a, (b, a)], y=b))
    result = run(kind, z, [1, 2], [3.0, 4.0])
    assert result[0] == od(x=[1, (3.0, 1)], y=3.0)
    assert isinstance(result[1]["x"], list) and isinstance(result[1]["x"][1], tuple)


def test_a_nested_computation_is_not_callable_on_its_own():
    inner = []

    @fcore.federated_computation(tf.float32)
    def outer(offset):
        @fcore.federated_computation(tf.float32)
        def shifted(x):
            return add(x, offset)
        inner.append(shifted)
        return shifted(1.0)
    assert outer(2.0) == 3.0
    with pytest.raises(TypeError, match="defined inside another federated computation"):
        inner[0](1.0)


def test_parameter_named_like_the_intrinsic_it_is_given_to():
    @fcore.federated_computation(fcore.FederatedType(tf.float32, fcore.SERVER))
    def f(federated_broadcast):
        return fcore.federated_broadcast(federated_broadcast)
    text = str(f)
    assert "`federated_broadcast`" in text
    parsed = fcore.parse_computation(text)
    assert parsed == f
    with fcore.execution_context(num_clients=2):
        assert parsed(2.0) == 2.0
