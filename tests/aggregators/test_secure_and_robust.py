"""fcore.aggregators: SecureSumFactory (clipped, quantised, securely summed) and the
coordinate-wise order statistics (MedianFactory, TrimmedMeanFactory, found by bisection over
the clients), checked against NumPy on the reference and fast executors (and Dask)."""

import numpy as np
import pytest

import fcore
from fcore import aggregators as A
from fcore.execution.errors import ExecutionError

V3 = fcore.TensorType(np.float32, [3])
PAIR = fcore.StructType([("a", fcore.TensorType(np.float32, [4])),
                         ("b", fcore.TensorType(np.float32, [2, 3]))])
EXECUTORS = ["reference", "fast"]


def run(process, values, executor="reference", state=None):
    state = process.initialize() if state is None else state
    if executor is None:  # the context installed by the caller
        return process.next(state, values)
    with fcore.execution_context(executor):
        return process.next(state, values)


def pairs(count, seed, ties=True):
    """`count` client values of type PAIR: negatives, zeros of both signs and, with `ties`,
    many equal values (drawn from a small grid)."""
    rng = np.random.default_rng(seed)

    def draw(shape):
        if ties:
            x = rng.integers(-4, 5, shape).astype(np.float32) / 2
        else:
            x = rng.standard_normal(shape).astype(np.float32)
        zeros = rng.random(shape) < 0.2
        return np.where(zeros, np.where(rng.random(shape) < 0.5, -0.0, 0.0), x).astype(
            np.float32)
    return [fcore.Struct([("a", draw(4)), ("b", draw((2, 3)))]) for _ in range(count)]


def stacked(values, name):
    return np.stack([getattr(v, name) for v in values])


def trimmed_mean(array, beta):
    """NumPy oracle: per coordinate, sort, drop floor(beta * n) at each end, mean."""
    n = array.shape[0]
    k = int(beta * n)
    kept = np.sort(array.astype(np.float64), axis=0)[k:n - k]
    return kept.mean(axis=0).astype(array.dtype)


# SecureSumFactory ----------------------------------------------------------------------------

def test_secure_sum_signature_and_measurements_are_tffs():
    process = A.SecureSumFactory(2.0).create(V3)
    assert str(process.initialize.type_signature) == "( -> <>@SERVER)"
    assert str(process.next.type_signature) == (
        "(<state=<>@SERVER,value={float32[3]}@CLIENTS> -> <state=<>@SERVER,"
        "result=float32[3]@SERVER,measurements=<secure_upper_clipped_count=int32,"
        "secure_lower_clipped_count=int32,secure_upper_threshold=float32,"
        "secure_lower_threshold=float32>@SERVER>)")
    assert "federated_secure_sum_bitwidth" in str(process.next)
    assert "federated_sum" not in str(process.next)  # everything summed securely
    process = A.SecureSumFactory(7, -1).create(fcore.TensorType(np.int32, [2]))
    assert "secure_upper_threshold=int32" in str(process.next.type_signature)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_secure_sum_of_floats_is_the_clipped_sum(executor):
    rng = np.random.default_rng(0)
    values = [rng.uniform(-3, 6, 3).astype(np.float32) for _ in range(9)]
    out = run(A.SecureSumFactory(5.0, -1.0).create(V3), values, executor)
    clipped = np.clip(np.stack(values).astype(np.float64), -1.0, 5.0)
    bound = 9 * 6.0 / 2 ** 32 + np.spacing(np.float32(np.abs(clipped.sum(0)).max()))
    assert np.all(np.abs(out.result - clipped.sum(0)) <= bound)
    stacked_values = np.stack(values)
    assert out.measurements.secure_upper_clipped_count == np.sum(stacked_values.max(1) > 5.0)
    assert out.measurements.secure_lower_clipped_count == np.sum(stacked_values.min(1) < -1.0)
    assert out.measurements.secure_upper_threshold == np.float32(5.0)
    assert out.measurements.secure_lower_threshold == np.float32(-1.0)
    assert out.result.dtype == np.float32


def test_the_quantisation_error_is_within_the_documented_bound():
    """float64 values (no rounding to float32 at the end): the result is within
    n * (upper - lower) / 2**32 of the exact sum of the clipped values; zeros sum to zero."""
    rng = np.random.default_rng(1)
    value_type = fcore.TensorType(np.float64, [200])
    for upper, lower in [(1.0, None), (5.0, -3.0), (1e-3, -1e-3), (1000.0, 999.0)]:
        values = [rng.uniform(-6, 6, 200) * (upper - (lower or -upper)) / 8 +
                  (upper + (lower or -upper)) / 2 for _ in range(40)]
        out = run(A.SecureSumFactory(upper, lower).create(value_type), values)
        low = -upper if lower is None else lower
        exact = np.clip(np.stack(values), low, upper).sum(0)
        error = np.abs(out.result - exact).max()
        assert error <= 40 * (upper - low) / 2 ** 32, (upper, lower, error)
    zeros = [np.zeros(200), -np.zeros(200), np.zeros(200)]
    for upper, lower in [(1.0, None), (0.3, -0.7), (2.5, -1e-4)]:
        out = run(A.SecureSumFactory(upper, lower).create(value_type), zeros)
        assert np.array_equal(out.result, np.zeros(200)), (upper, lower, out.result)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_secure_sum_of_integers_is_exact(executor):
    values = [np.array([1, 5, -7, 0], np.int32), np.array([2, 2, 2, -2], np.int32),
              np.array([3, -2, 0, 1], np.int32)]
    process = A.SecureSumFactory(3, -2).create(fcore.TensorType(np.int32, [4]))
    out = run(process, values, executor)
    np.testing.assert_array_equal(out.result, np.clip(np.stack(values), -2, 3).sum(0))
    assert out.result.dtype == np.int32
    assert (out.measurements.secure_upper_clipped_count,
            out.measurements.secure_lower_clipped_count) == (1, 1)
    # Only the upper threshold: the lower one is its negative (TFF's rule for integers too).
    out = run(A.SecureSumFactory(4).create(fcore.TensorType(np.int32, [4])), values, executor)
    np.testing.assert_array_equal(out.result, np.clip(np.stack(values), -4, 4).sum(0))
    assert out.measurements.secure_lower_threshold == -4
    # Wide ranges: summed in int64 and checked, not wrapped around.
    process = A.SecureSumFactory(2 ** 30).create(np.int32)
    values = [np.int32(2 ** 30), np.int32(-2 ** 30 + 1), np.int32(7)]
    assert run(process, values, executor).result == 8


def test_an_integer_sum_that_does_not_fit_is_an_error():
    process = A.SecureSumFactory(100, -100).create(np.int8)
    with pytest.raises(ExecutionError, match="does not fit int8"):
        run(process, [np.int8(100), np.int8(100)])
    process = A.SecureSumFactory(2 ** 62, 2 ** 62 - 10).create(np.int64)
    assert run(process, [np.int64(2 ** 62)]).result == 2 ** 62
    with pytest.raises(ExecutionError, match="SecureSumFactory: the sum of the clipped values "
                                             "does not fit int64"):
        run(process, [np.int64(2 ** 62)] * 2)
    # The shifted values (value - lower) are summed in int64 too.
    process = A.SecureSumFactory(2 ** 60).create(np.int64)
    assert run(process, [np.int64(2 ** 60)] * 3).result == 3 * 2 ** 60
    with pytest.raises(ExecutionError, match="does not fit int64"):
        run(process, [np.int64(2 ** 60)] * 4)


def test_secure_sum_of_a_struct_and_nans():
    values = pairs(5, seed=2, ties=False)
    values[1].a[2] = np.nan  # summed as 0
    out = run(A.SecureSumFactory(1.0).create(PAIR), values, "fast")
    for name in ("a", "b"):
        clipped = np.clip(np.nan_to_num(stacked(values, name).astype(np.float64), nan=0.0),
                          -1, 1)
        np.testing.assert_allclose(getattr(out.result, name), clipped.sum(0), atol=1e-6)


def test_estimated_bounds_adapt_as_tffs_secure_aggregator():
    estimate = A.QuantileEstimationProcess.no_noise(1.0, 0.5, 0.2)
    process = A.SecureSumFactory(estimate).create(V3)
    assert str(process.initialize.type_signature) == "( -> <estimate=float32>@SERVER)"
    values = [np.array([3, 0, 0], np.float32), np.array([0.5, -0.25, 0], np.float32),
              np.array([-2, 0, 0.1], np.float32)]
    for executor in EXECUTORS:
        out = run(process, values, executor)
        np.testing.assert_allclose(out.result, np.clip(np.stack(values), -1, 1).sum(0),
                                   atol=1e-6)
        assert (out.measurements.secure_upper_clipped_count,
                out.measurements.secure_lower_clipped_count) == (1, 1)
        assert out.measurements.secure_lower_threshold == -1.0
        # The estimate moved as the estimation process moves on the clients' largest
        # absolute values (3, 0.5, 2): two of three above 1.
        expected = estimate.next(estimate.initialize(), [3.0, 0.5, 2.0])
        np.testing.assert_allclose(out.state.estimate, expected.estimate, rtol=1e-6)
    # Two processes: one for each bound, each seeing the clients' largest / smallest values.
    upper = A.QuantileEstimationProcess.no_noise(2.0, 0.5, 0.2)
    lower = A.fixed_estimate(-0.5)
    process = A.SecureSumFactory(upper, lower).create(V3)
    out = run(process, values)
    np.testing.assert_allclose(out.result, np.clip(np.stack(values), -0.5, 2).sum(0),
                               atol=1e-6)
    expected = upper.next(upper.initialize(), [3.0, 0.5, 0.1])
    np.testing.assert_allclose(out.state.upper_bound.estimate, expected.estimate, rtol=1e-6)


def test_secure_sum_inside_a_mean():
    values = [np.array([1, 2, 3], np.float32), np.array([10, 0, -0.3], np.float32),
              np.array([0, 0.5, 0], np.float32)]
    weights = [1.0, 2.0, 1.0]
    process = A.MeanFactory(value_sum_factory=A.SecureSumFactory(2.0)).create(V3, np.float32)
    with fcore.execution_context("fast"):
        out = process.next(process.initialize(), values, weights)
    scaled = np.clip(np.stack(values) * np.array(weights)[:, None], -2, 2)
    np.testing.assert_allclose(out.result, scaled.sum(0) / 4, atol=1e-6)
    assert out.measurements.mean_value.secure_upper_clipped_count == 2
    process = A.UnweightedMeanFactory(value_sum_factory=A.SecureSumFactory(
        A.QuantileEstimationProcess.no_noise(1.0, 0.5, 0.2))).create(V3)
    out = run(process, values)
    np.testing.assert_allclose(out.result, np.clip(np.stack(values), -1, 1).mean(0), atol=1e-6)


def test_secure_sum_errors_say_what_was_expected():
    with pytest.raises(TypeError, match="expected an int, a float or an EstimationProcess, "
                                        "found 'one'"):
        A.SecureSumFactory("one")
    with pytest.raises(TypeError, match="found True"):
        A.SecureSumFactory(True)
    with pytest.raises(ValueError, match="must be > 0, found -1.0"):
        A.SecureSumFactory(-1.0)
    with pytest.raises(ValueError, match="upper_bound_threshold > lower_bound_threshold, "
                                         "found 1.0 <= 2.0"):
        A.SecureSumFactory(1.0, 2.0)
    with pytest.raises(TypeError, match="same kind.*found 1 and 0.5"):
        A.SecureSumFactory(1, 0.5)
    with pytest.raises(ValueError, match="finite upper_bound_threshold, found nan"):
        A.SecureSumFactory(float("nan"))
    with pytest.raises(TypeError, match="report is a float at the server"):
        A.SecureSumFactory(A.EstimationProcess(A.fixed_estimate(1.0).initialize,
                                               A.fixed_estimate(1.0).next,
                                               A.SumFactory().create(np.float32).initialize))
    with pytest.raises(TypeError, match="integer thresholds .* sum integer values, found "
                                        "float32"):
        A.SecureSumFactory(3).create(np.float32)
    with pytest.raises(TypeError, match="float thresholds sum floating-point values, found "
                                        "int32; give integer thresholds"):
        A.SecureSumFactory(3.0).create(np.int32)
    with pytest.raises(TypeError, match="estimated thresholds sum floating-point values"):
        A.SecureSumFactory(A.fixed_estimate(1.0)).create(np.int32)
    with pytest.raises(TypeError, match="one dtype throughout the value.*float32, float64"):
        A.SecureSumFactory(1.0).create(fcore.StructType([np.float32, np.float64]))
    with pytest.raises(ValueError, match="upper bound 300 is outside the range of int8"):
        A.SecureSumFactory(300).create(np.int8)
    with pytest.raises(ValueError, match="lower bound -1 is outside the range of uint8"):
        A.SecureSumFactory(1).create(np.uint8)
    with pytest.raises(ValueError, match="upper bound 1000000.0 is outside the range of "
                                         "float16"):
        A.SecureSumFactory(1e6).create(np.float16)
    with pytest.raises(ValueError, match="must fit int64"):
        A.SecureSumFactory(2 ** 62)


def test_secure_sum_saves_loads_prints_and_parses(tmp_path):
    process = A.SecureSumFactory(A.QuantileEstimationProcess.no_noise(1.0, 0.5, 0.2)).create(
        PAIR)
    values = pairs(4, seed=3, ties=False)
    expected = run(process, values)
    assert fcore.parse_computation(str(process.next), process.next.leaves()) == process.next
    fcore.save(process.next, tmp_path / "secure.fcore")
    loaded = fcore.load(tmp_path / "secure.fcore")
    assert loaded.type_signature == process.next.type_signature
    with fcore.execution_context("fast"):
        state, result, measurements = loaded(process.initialize(), values)
    for name in ("a", "b"):
        np.testing.assert_array_equal(getattr(result, name), getattr(expected.result, name))
    assert state.estimate == expected.state.estimate


# MedianFactory and TrimmedMeanFactory ---------------------------------------------------------

def test_order_statistics_signatures_and_a_compact_program():
    for factory in (A.MedianFactory(), A.TrimmedMeanFactory(0.1)):
        process = factory.create(PAIR)
        assert str(process.initialize.type_signature) == "( -> <>@SERVER)"
        assert str(process.next.type_signature) == (
            "(<state=<>@SERVER,value={<a=float32[4],b=float32[2,3]>}@CLIENTS> -> "
            "<state=<>@SERVER,result=<a=float32[4],b=float32[2,3]>@SERVER,"
            "measurements=<clients=int32,excluded=int32>@SERVER>)")
        text = str(process.next)
        # The round is written once and called 31 times.
        assert text.count("federated_broadcast") == (1 if factory.__class__ is A.MedianFactory
                                                     else 2)
        assert len(text) < 5000


@pytest.mark.parametrize("executor", EXECUTORS)
def test_median_matches_numpy(executor):
    process = A.MedianFactory().create(PAIR)
    for count, seed, ties in [(7, 0, True), (8, 1, True), (1, 3, False)]:
        values = pairs(count, seed, ties)
        out = run(process, values, executor)
        for name in ("a", "b"):
            np.testing.assert_array_equal(getattr(out.result, name),
                                          np.median(stacked(values, name), axis=0))
        assert (out.measurements.clients, out.measurements.excluded) == (count, 0)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_trimmed_mean_matches_numpy(executor):
    for beta, count, seed, ties in [(0.1, 10, 4, True), (0.25, 9, 5, True),
                                    (0.4, 7, 6, False)]:
        values = pairs(count, seed, ties)
        out = run(A.TrimmedMeanFactory(beta).create(PAIR), values, executor)
        for name in ("a", "b"):
            np.testing.assert_allclose(getattr(out.result, name),
                                       trimmed_mean(stacked(values, name), beta),
                                       rtol=1e-6, atol=1e-7)


def test_extreme_values_zeros_and_wide_dtypes():
    big = np.finfo(np.float32).max
    tiny = np.finfo(np.float32).smallest_subnormal
    column = np.array([-big, big, -tiny, tiny, -0.0, 0.0, 1.0, -1.0, big], np.float32)
    values = [np.array([x, -x], np.float32) for x in column]
    for count in (9, 8, 5, 2):
        out = run(A.MedianFactory().create(fcore.TensorType(np.float32, [2])), values[:count])
        np.testing.assert_array_equal(out.result, np.median(np.stack(values[:count]), axis=0))
    value_type = fcore.StructType([("w", fcore.TensorType(np.float64, [3])),
                                   ("h", fcore.TensorType(np.float16, [2]))])
    rng = np.random.default_rng(8)
    values = [fcore.Struct([("w", rng.standard_normal(3) * 1e300),
                            ("h", rng.standard_normal(2).astype(np.float16))])
              for _ in range(6)]
    out = run(A.TrimmedMeanFactory(0.2).create(value_type), values, "fast")
    np.testing.assert_allclose(out.result.w, trimmed_mean(stacked(values, "w"), 0.2),
                               rtol=1e-12)
    np.testing.assert_allclose(out.result.h, trimmed_mean(stacked(values, "h"), 0.2),
                               rtol=1e-3)
    assert out.result.w.dtype == np.float64 and out.result.h.dtype == np.float16


@pytest.mark.parametrize("factory", [A.MedianFactory(), A.TrimmedMeanFactory(0.2)],
                         ids=repr)
def test_non_finite_clients_are_left_out_and_outliers_do_not_drag(factory):
    process = factory.create(PAIR)
    honest = pairs(9, seed=9, ties=False)
    expected = run(process, honest, "fast")
    bad = pairs(2, seed=10, ties=False)
    bad[0].b[1, 2] = np.nan
    bad[1].a[0] = -np.inf
    out = run(process, honest[:4] + [bad[0]] + honest[4:] + [bad[1]], "fast")
    for name in ("a", "b"):
        np.testing.assert_array_equal(getattr(out.result, name),
                                      getattr(expected.result, name))
    assert (out.measurements.clients, out.measurements.excluded) == (9, 2)
    # One client sending 1e6 everywhere: each coordinate stays within the honest values.
    attacker = fcore.Struct([("a", np.full(4, 1e6, np.float32)),
                             ("b", np.full((2, 3), 1e6, np.float32))])
    out = run(process, honest + [attacker], "reference")
    for name in ("a", "b"):
        honest_values = stacked(honest, name)
        result = getattr(out.result, name)
        assert np.all(result >= honest_values.min(0)) and np.all(result <= honest_values.max(0))


def test_no_clients_give_nan_and_beta_zero_is_the_mean():
    for factory in (A.MedianFactory(), A.TrimmedMeanFactory(0.3)):
        out = run(factory.create(V3), [np.full(3, np.nan, np.float32)])
        assert np.all(np.isnan(out.result))
        assert (out.measurements.clients, out.measurements.excluded) == (0, 1)
    values = [np.array([1, 2, 3], np.float32), np.array([10, 0, -0.3], np.float32),
              np.array([0, 0.5, 0], np.float32)]
    out = run(A.TrimmedMeanFactory(0).create(V3), values)
    np.testing.assert_allclose(out.result, np.mean(values, axis=0), rtol=1e-6)


def test_order_statistics_errors_say_what_was_expected():
    with pytest.raises(ValueError, match=r"beta.*in \[0, 0.5\), found 0.5"):
        A.TrimmedMeanFactory(0.5)
    with pytest.raises(ValueError, match=r"in \[0, 0.5\), found -0.1"):
        A.TrimmedMeanFactory(-0.1)
    with pytest.raises(TypeError, match="a number in \\[0, 0.5\\), found 'a'"):
        A.TrimmedMeanFactory("a")
    with pytest.raises(TypeError, match="MedianFactory.create: expected floating-point values, "
                                        "found int32"):
        A.MedianFactory().create(np.int32)
    with pytest.raises(TypeError, match="TrimmedMeanFactory.create: expected a value type"):
        A.TrimmedMeanFactory(0.1).create("float")


def test_order_statistics_save_load_print_and_parse(tmp_path):
    process = A.TrimmedMeanFactory(0.25).create(PAIR)
    values = pairs(6, seed=11)
    expected = run(process, values, "fast")
    assert fcore.parse_computation(str(process.next), process.next.leaves()) == process.next
    fcore.save(process.next, tmp_path / "trimmed.fcore")
    loaded = fcore.load(tmp_path / "trimmed.fcore")
    assert loaded.type_signature == process.next.type_signature
    with fcore.execution_context("fast"):
        state, result, measurements = loaded(process.initialize(), values)
    for name in ("a", "b"):
        np.testing.assert_array_equal(getattr(result, name), getattr(expected.result, name))
    assert measurements.clients == 6


def test_median_on_dask():
    """On a LocalCluster of two in-process workers (threads: no TensorFlow import per worker,
    which would dominate this file's time); the passes still run in chunks on the workers."""
    distributed = pytest.importorskip("distributed")
    from fcore.execution import distributed as fdist
    values = pairs(9, seed=12)
    values[3].a[1] = np.nan
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client, fcore.execution_context(dask=client):
        out = run(A.MedianFactory().create(PAIR), values, executor=None)
        assert fdist.last_report["chunks"] > 1
    kept = values[:3] + values[4:]
    for name in ("a", "b"):
        np.testing.assert_array_equal(getattr(out.result, name),
                                      np.median(stacked(kept, name), axis=0))
    assert (out.measurements.clients, out.measurements.excluded) == (8, 1)
