"""The fast (streaming) executor gives the reference interpreter's results."""

import collections

import numpy as np
import pytest
import tensorflow as tf

import fcore
import learning
from fcore import CLIENTS, FederatedType

from support import assert_close, random_client_data, small_model_fn


def run_both(computation, *args, **context):
    results = []
    for kind in ("reference", "fast"):
        with fcore.execution_context(kind, **context):
            results.append(computation(*args))
    return results


def test_fast_is_the_default_and_reference_is_available():
    from fcore.execution import context
    assert context.current().kind == "fast"
    with fcore.execution_context("reference"):
        assert context.current().kind == "reference"
    with pytest.raises(ValueError, match="Unknown execution context 'warp'"):
        with fcore.execution_context("warp"):
            pass
    with pytest.raises(ValueError, match="dask= runs the Dask executor"):
        with fcore.execution_context("reference", dask="tcp://scheduler:8786"):
            pass


def test_a_fedavg_round_matches_on_both_executors():
    process = learning.build_federated_averaging_process(small_model_fn)
    state = process.initialize()
    data = random_client_data(7) + [[]]  # and an empty client
    with pytest.warns(RuntimeWarning):
        (ref_state, ref_metrics), (fast_state, fast_metrics) = run_both(
            process.next, state, data)
    assert_close(ref_state, fast_state)
    assert_close(ref_metrics, fast_metrics)
    assert process.next.last_report.clients == 8  # every client, the empty one included


def test_streaming_keeps_per_client_results_that_are_returned():
    comp = fcore.parse_computation(
        "(x:{float32}@CLIENTS -> (let m=federated_mean(x),b=federated_broadcast(m),"
        "z=federated_zip_at_clients(<x,b>) in <federated_sum(x),z>))")
    reference, fast = run_both(comp, [1.0, 2.0, 6.0])
    assert reference == fast
    assert [tuple(z) for z in fast[1]] == [(1.0, 3.0), (2.0, 3.0), (6.0, 3.0)]


def test_progress_is_reported_per_client_for_tf_work():
    @fcore.tf_computation(np.float32)
    def double(v):
        return v * 2

    @fcore.federated_computation(FederatedType(np.float32, CLIENTS))
    def total(x):
        return fcore.federated_sum(fcore.federated_map(double, x))

    for kind in ("reference", "fast"):
        seen = []
        with fcore.execution_context(kind, progress=lambda d, t: seen.append((d, t))):
            assert total([1.0, 2.0, 3.0]) == 12.0
        assert seen == [(1, 3), (2, 3), (3, 3)], kind


def test_fast_names_the_failing_client():
    @fcore.tf_computation(np.int32)
    def positive(x):
        tf.debugging.assert_positive(x)
        return x

    @fcore.federated_computation(FederatedType(np.int32, CLIENTS))
    def checked(x):
        return fcore.federated_sum(fcore.federated_map(positive, x))

    with pytest.raises(fcore.ExecutionError, match="'positive' failed on client 1"):
        checked([3, -1, 2])


def test_fast_needs_the_number_of_clients_as_the_reference_does():
    comp = fcore.parse_computation("(s:float32@SERVER -> federated_sum(federated_map("
                                   "<(v:float32 -> v),federated_broadcast(s)>)))")
    with pytest.raises(fcore.CardinalityError, match="num_clients"):
        comp(1.5)
    assert run_both(comp, 1.5, num_clients=4) == [6.0, 6.0]


def test_clients_run_compiled_in_graphs_with_the_same_results():
    from fcore.execution import lowering
    process = learning.build_federated_averaging_process(small_model_fn)
    state = process.initialize()
    rng = np.random.default_rng(3)
    alike = [[collections.OrderedDict(x=rng.random((20, 784), dtype=np.float32),
                                      y=rng.integers(0, 10, 20).astype(np.int32))]
             for _ in range(lowering.MIN_GROUP + 2)]
    # and a few odd ones of two batches, sliced from ragged arrays
    data = alike + [a + b for a, b in zip(random_client_data(3, seed=4),
                                          random_client_data(3, seed=5))]
    (ref_state, ref_metrics), (fast_state, fast_metrics) = run_both(process.next, state, data)
    loops = [loop for leaf in process.next.leaves().values()
             for loop in lowering.compiled_loops(leaf)]
    assert sorted(type(loop).__name__ for loop in loops) == ["_GroupFunction", "_RaggedFunction"]
    assert_close(ref_state, fast_state)
    assert_close(ref_metrics, fast_metrics)
    assert process.next.last_report.clients == len(data)


@pytest.mark.parametrize("shape", [(), (3,)])
def test_a_mean_keeps_adding_after_merging_partial_means(shape):
    from fcore.execution import accumulators
    from fcore.intrinsics.definitions import lookup
    member = fcore.TensorType(np.float32, shape)
    fn_type = lookup("federated_mean").function_type(fcore.FederatedType(member, fcore.CLIENTS))

    def partial(*values):
        acc = accumulators.start("federated_mean", fn_type, [])
        for value in values:
            acc.add(np.full(shape, value, np.float32))
        return acc

    total = partial(1.0)
    total.merge(partial(2.0))   # adopted arrays, then
    total.merge(partial(3.0))   # a sum of partials (0-d arrays must stay arrays)
    total.add(np.full(shape, 10.0, np.float32))
    np.testing.assert_allclose(total.result(), np.full(shape, 4.0))
