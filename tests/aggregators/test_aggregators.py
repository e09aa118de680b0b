"""fcore.aggregators: sums and means, clipping, zeroing, adaptive norms and DP noise, checked
against NumPy on the reference and fast executors (and Dask for a composition)."""

import numpy as np
import pytest

import fcore
from fcore import aggregators as A

V3 = fcore.TensorType(np.float32, [3])
VALUES = [np.array([1, 2, 3], np.float32), np.array([10, 0, 0], np.float32),
          np.array([0, 0.5, 0], np.float32)]
WEIGHTS = [1.0, 2.0, 1.0]
EXECUTORS = ["reference", "fast"]


def run(process, *arguments, executor="reference", state=None):
    state = process.initialize() if state is None else state
    with fcore.execution_context(executor):
        return process.next(state, *arguments)


def test_sum_factory_signature_is_tffs():
    process = A.SumFactory().create(np.float32)
    assert str(process.initialize.type_signature) == "( -> <>@SERVER)"
    assert str(process.next.type_signature) == (
        "(<state=<>@SERVER,value={float32}@CLIENTS> -> <state=<>@SERVER,result=float32@SERVER,"
        "measurements=<>@SERVER>)")
    assert not process.is_weighted
    assert isinstance(process, fcore.IterativeProcess)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_sums_and_means_match_numpy(executor):
    stacked, weights = np.stack(VALUES), np.array(WEIGHTS, np.float32)
    out = run(A.SumFactory().create(V3), VALUES, executor=executor)
    assert isinstance(out, A.MeasuredProcessOutput)
    np.testing.assert_allclose(out.result, stacked.sum(0), rtol=1e-6)
    out = run(A.UnweightedMeanFactory().create(V3), VALUES, executor=executor)
    np.testing.assert_allclose(out.result, stacked.mean(0), rtol=1e-6)
    assert out.measurements.to_dict() == {"mean_value": fcore.Struct([]),
                                          "mean_count": fcore.Struct([])}
    weighted = A.MeanFactory().create(V3, np.float32)
    assert weighted.is_weighted
    out = run(weighted, VALUES, WEIGHTS, executor=executor)
    expected = (stacked * weights[:, None]).sum(0) / weights.sum()
    np.testing.assert_allclose(out.result, expected, rtol=1e-6)
    # the same means through inner sum factories
    out = run(A.MeanFactory(value_sum_factory=A.SumFactory()).create(V3, np.float32), VALUES,
              WEIGHTS, executor=executor)
    np.testing.assert_allclose(out.result, expected, rtol=1e-6)
    out = run(A.UnweightedMeanFactory(count_sum_factory=A.SumFactory()).create(V3), VALUES,
              executor=executor)
    np.testing.assert_allclose(out.result, stacked.mean(0), rtol=1e-6)


def test_weighted_and_unweighted_means_differ_on_unequal_clients():
    weighted = run(A.MeanFactory().create(V3, np.float32), VALUES, [1.0, 100.0, 1.0]).result
    unweighted = run(A.UnweightedMeanFactory().create(V3), VALUES).result
    assert not np.allclose(weighted, unweighted)


def test_no_nan_division_gives_zeros_for_zero_weights():
    process = A.MeanFactory(no_nan_division=True).create(V3, np.float32)
    np.testing.assert_array_equal(run(process, VALUES, [0.0, 0.0, 0.0]).result, np.zeros(3))
    assert np.isnan(run(A.MeanFactory().create(V3, np.float32), VALUES,
                        [0.0, 0.0, 0.0]).result).all()


def test_struct_values_and_integer_weights():
    value_type = fcore.StructType([("a", fcore.TensorType(np.float32, [2])),
                                   ("b", fcore.TensorType(np.float32))])
    values = [fcore.Struct([("a", np.array([1.0, 2.0], np.float32)), ("b", np.float32(3.0))]),
              fcore.Struct([("a", np.array([3.0, 4.0], np.float32)), ("b", np.float32(5.0))])]
    out = run(A.MeanFactory().create(value_type, np.int32), values, [1, 3])
    np.testing.assert_allclose(out.result.a, [2.5, 3.5])
    np.testing.assert_allclose(out.result.b, 4.5)


def norms(values):
    return np.array([np.linalg.norm(v) for v in values])


@pytest.mark.parametrize("executor", EXECUTORS)
def test_clipping_scales_each_client_to_the_norm_and_counts_them(executor):
    process = A.clipping_factory(2.0, A.SumFactory()).create(V3)
    out = run(process, VALUES, executor=executor)
    scale = np.minimum(1.0, 2.0 / norms(VALUES))
    expected = (np.stack(VALUES) * scale[:, None]).sum(0)
    np.testing.assert_allclose(out.result, expected, rtol=1e-5)
    assert int(out.measurements.clipped_count) == 2
    assert float(out.measurements.clipping_norm) == 2.0
    assert str(process.next.type_signature.result).startswith("<state=<clipping_norm=<>")


@pytest.mark.parametrize("executor", EXECUTORS)
def test_zeroing_replaces_large_and_non_finite_values(executor):
    values = VALUES + [np.array([np.nan, 0, 0], np.float32)]
    process = A.zeroing_factory(5.0, A.UnweightedMeanFactory()).create(V3)
    out = run(process, values, executor=executor)
    kept = np.stack([VALUES[0], np.zeros(3), VALUES[2], np.zeros(3)])
    np.testing.assert_allclose(out.result, kept.mean(0), rtol=1e-6)
    assert int(out.measurements.zeroed_count) == 2
    # a zeroed client keeps its weight (as in TFF)
    weighted = A.zeroing_factory(5.0, A.MeanFactory()).create(V3, np.float32)
    out = run(weighted, VALUES, WEIGHTS, executor=executor)
    np.testing.assert_allclose(out.result, (VALUES[0] + VALUES[2]) / 4.0, rtol=1e-6)


def test_zeroing_norm_orders():
    value = [np.array([3.0, -4.0, 0.0], np.float32)]  # L1 7, L2 5, Linf 4
    for order, zeroed in ((1.0, 1), (2.0, 0), (np.inf, 0)):
        out = run(A.zeroing_factory(5.0, A.SumFactory(), norm_order=order).create(V3), value)
        assert int(out.measurements.zeroed_count) == zeroed, order


def test_adaptive_clipping_norm_moves_toward_the_target_quantile():
    rng = np.random.default_rng(0)
    values = [rng.normal(size=3).astype(np.float32) for _ in range(21)]
    values = [v / np.linalg.norm(v) * n for v, n in zip(values, np.linspace(1, 21, 21))]
    estimate = A.QuantileEstimationProcess.no_noise(initial_estimate=0.5, target_quantile=0.5,
                                                    learning_rate=0.5)
    process = A.clipping_factory(estimate, A.SumFactory()).create(V3)
    state = process.initialize()
    seen = []
    for _ in range(40):
        state, _, measurements = run(process, values, state=state)
        seen.append(float(measurements.clipping_norm))
    assert seen[0] == 0.5
    assert 9.0 <= seen[-1] <= 13.0, seen  # the median norm is 11
    assert seen[10] > seen[0]


def test_quantile_estimate_reports_multiplier_and_increment():
    process = A.QuantileEstimationProcess(2.0, 0.5, 0.1, multiplier=2.0, increment=1.0)
    assert float(process.report(process.initialize())) == 5.0
    state = process.next(process.initialize(), [1.0, 1.0, 1.0])  # all below: shrinks
    np.testing.assert_allclose(float(state.estimate), 2.0 * np.exp(-0.1 * 0.5), rtol=1e-6)
    assert float(process.next(process.initialize(), []).estimate) == 2.0  # no clients


@pytest.mark.parametrize("executor", EXECUTORS)
def test_dp_noise_has_the_promised_standard_deviation(executor):
    size, clip, noise_multiplier, clients = 40_000, 2.0, 1.5, 10
    factory = A.DifferentiallyPrivateFactory.gaussian_fixed(noise_multiplier, clients, clip,
                                                            seed=7)
    process = factory.create(fcore.TensorType(np.float32, [size]))
    values = [np.zeros(size, np.float32)] * 3
    out = run(process, values, executor=executor)
    expected = noise_multiplier * clip / clients
    assert abs(np.std(out.result) - expected) < 0.05 * expected
    assert abs(np.mean(out.result)) < 0.05 * expected
    np.testing.assert_allclose(float(out.measurements.dp_query_metrics.noise_stddev), expected,
                               rtol=1e-6)
    again = run(process, values, executor=executor)  # the same state: the same noise
    np.testing.assert_array_equal(out.result, again.result)
    following = run(process, values, executor=executor, state=out.state)
    assert not np.array_equal(following.result, out.result)  # the seed advances


def test_dp_mean_clips_then_divides_by_clients_per_round():
    factory = A.DifferentiallyPrivateFactory.gaussian_fixed(0.0, 4, 1.0)
    out = run(factory.create(V3), VALUES)
    scale = np.minimum(1.0, 1.0 / norms(VALUES))
    np.testing.assert_allclose(out.result, (np.stack(VALUES) * scale[:, None]).sum(0) / 4,
                               rtol=1e-6)
    assert out.measurements.dp_query_metrics.names() == ("clip", "noise_stddev")


def test_dp_adaptive_splits_the_noise_and_adapts_the_clip():
    factory = A.DifferentiallyPrivateFactory.gaussian_adaptive(0.5, 100, seed=1)
    expected = (0.5 ** -2 - (2 * 5.0) ** -2) ** -0.5
    assert factory.value_noise_multiplier == pytest.approx(expected)
    process = factory.create(V3)
    state = process.initialize()
    clips = []
    for _ in range(5):
        state, _, measurements = run(process, [v * 100 for v in VALUES], state=state)
        clips.append(float(measurements.dp_query_metrics.clip))
    assert clips[0] == pytest.approx(0.1) and clips[-1] > clips[0]
    with pytest.raises(ValueError, match="clipped_count_stddev"):
        A.DifferentiallyPrivateFactory.gaussian_adaptive(2.0, 10)


def test_dp_seeds_make_runs_reproducible():
    def result(seed):
        factory = A.DifferentiallyPrivateFactory.gaussian_fixed(1.0, 3, 1.0, seed=seed)
        return run(factory.create(V3), VALUES).result
    np.testing.assert_array_equal(result(3), result(3))
    assert not np.array_equal(result(3), result(4))


def test_the_audit_shows_the_noise_on_every_path_from_the_clients():
    factory = A.DifferentiallyPrivateFactory.gaussian_adaptive(0.2, 10, seed=1)
    report = fcore.audit(factory.create(V3).next)
    assert report.ok
    for dependency in report.client_dependencies:
        for path in dependency.paths:
            assert "gaussian_noise" in path or "quantile_update" in path, dependency


def test_bad_arguments_say_what_was_expected():
    with pytest.raises(ValueError, match="finite number > 0, found -1"):
        A.clipping_factory(-1.0, A.SumFactory())
    with pytest.raises(TypeError, match="aggregation factory"):
        A.clipping_factory(1.0, "mean")
    with pytest.raises(TypeError, match="floating-point values"):
        A.MeanFactory().create(np.int32, np.float32)
    with pytest.raises(TypeError, match="scalar weight"):
        A.MeanFactory().create(np.float32, fcore.TensorType(np.float32, [2]))
    with pytest.raises(ValueError, match="noise_multiplier must be a number >= 0"):
        A.DifferentiallyPrivateFactory.gaussian_fixed(-1, 10, 1.0)
    with pytest.raises(ValueError, match="target_quantile"):
        A.QuantileEstimationProcess(1.0, 1.5, 0.1)
    with pytest.raises(TypeError, match="must be unweighted"):
        A.MeanFactory(value_sum_factory=A.MeanFactory())


def test_a_composition_prints_parses_and_saves(tmp_path):
    process = A.zeroing_factory(5.0, A.clipping_factory(2.0, A.MeanFactory())).create(
        V3, np.float32)
    expected = run(process, VALUES, WEIGHTS)
    path = tmp_path / "next.fcore"
    fcore.save(process.next, path)
    loaded = fcore.load(path)
    assert loaded.type_signature == process.next.type_signature
    with fcore.execution_context("reference"):
        out = loaded(process.initialize(), VALUES, WEIGHTS)
    np.testing.assert_allclose(out[1], expected.result, rtol=1e-6)


def test_compositions_agree_on_dask():
    from support import local_cluster
    cluster = local_cluster()
    client = next(cluster)
    try:
        process = A.zeroing_factory(5.0, A.clipping_factory(
            A.QuantileEstimationProcess.no_noise(1.0, 0.5, 0.2), A.MeanFactory())).create(
            V3, np.float32)
        expected = run(process, VALUES, WEIGHTS)
        with fcore.execution_context(dask=client):
            out = process.next(process.initialize(), VALUES, WEIGHTS)
        np.testing.assert_allclose(out.result, expected.result, rtol=1e-6)
        assert str(out.measurements) == str(expected.measurements)
    finally:
        next(cluster, None)
