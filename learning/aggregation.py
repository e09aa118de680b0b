"""Ready-made aggregator compositions for model updates, as TFF's `tff.learning`'s
`robust_aggregator`, `dp_aggregator` and `secure_aggregator`; each returns an
`fcore.aggregators` factory for `model_aggregator=`."""

from __future__ import annotations

import math

from fcore import aggregators as agg


def _adaptive_zeroing():
    # Zero a client whose update norm is far above the typical (98th percentile) one.
    return agg.QuantileEstimationProcess.no_noise(initial_estimate=10.0, target_quantile=0.98,
                                                  learning_rate=math.log(10.0), multiplier=2.0,
                                                  increment=1.0)


def _behind_clipping_and_zeroing(factory, clipping, zeroing):
    """`factory` behind adaptive clipping (to an estimate of the 80th percentile of the
    clients' update norms) and adaptive zeroing, as TFF composes them."""
    if clipping:
        factory = agg.clipping_factory(agg.QuantileEstimationProcess.no_noise(
            initial_estimate=1.0, target_quantile=0.8, learning_rate=0.2), factory)
    if zeroing:
        factory = agg.zeroing_factory(_adaptive_zeroing(), factory)
    return factory


def robust_aggregator(zeroing=True, clipping=True, weighted=True):
    """A mean (weighted by examples if `weighted`), with adaptive clipping (to an estimate of
    the 80th percentile of the clients' update norms) and adaptive zeroing of outliers (norms
    above twice the 98th percentile, plus one)."""
    factory = agg.MeanFactory() if weighted else agg.UnweightedMeanFactory()
    return _behind_clipping_and_zeroing(factory, clipping, zeroing)


def dp_aggregator(noise_multiplier, clients_per_round, zeroing=True, seed=None):
    """DP-FedAvg's aggregation with an adaptive clip (`DifferentiallyPrivateFactory.
    gaussian_adaptive`), unweighted as DP requires, optionally behind adaptive zeroing.
    `seed` (an int) makes the noise reproducible; by default it is drawn afresh."""
    factory = agg.DifferentiallyPrivateFactory.gaussian_adaptive(noise_multiplier,
                                                                 clients_per_round, seed=seed)
    return _behind_clipping_and_zeroing(factory, clipping=False, zeroing=zeroing)


def secure_aggregator(zeroing=True, clipping=True, weighted=True):
    """A mean whose sums run on `federated_secure_sum_bitwidth` (`SecureSumFactory`, bounds
    adapted to the clients' values), with adaptive clipping and zeroing as in
    `robust_aggregator`."""
    bound = agg.QuantileEstimationProcess.no_noise(initial_estimate=50.0, target_quantile=0.95,
                                                   learning_rate=1.0, multiplier=2.0)
    secure_sum = agg.SecureSumFactory(bound)
    factory = agg.MeanFactory(value_sum_factory=secure_sum) if weighted else \
        agg.UnweightedMeanFactory(value_sum_factory=secure_sum)
    return _behind_clipping_and_zeroing(factory, clipping, zeroing)
