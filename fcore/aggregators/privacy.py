"""DP-FedAvg's aggregation (McMahan et al., "Learning differentially private recurrent language
models", 2018): clip each client's value to L2 norm `clip`, sum, add Gaussian noise of standard
deviation `noise_multiplier * clip` to the sum, and divide by `clients_per_round`. The clip is
fixed (`gaussian_fixed`) or a noisy quantile estimate of the clients' norms
(`gaussian_adaptive`, Andrew et al. 2021). The noise comes from TensorFlow's stateless
generator; its seed is part of the state, so a run is reproducible and resumable."""

from __future__ import annotations

import math

import numpy as np

from fcore.aggregators import core as agg
from fcore.aggregators.estimation import (FLOAT, SEED, QuantileEstimationProcess,
                                          fixed_estimate, new_seed)
from fcore.aggregators.robust import _clip_leaf
from fcore.audit import mark_noise
from fcore.struct import Struct
from fcore.tracing import intrinsics as fi
from fcore.tracing.computation import federated_computation, tf_computation
from fcore.types.placements import SERVER


class DifferentiallyPrivateFactory(agg.UnweightedAggregationFactory):
    """The Gaussian mechanism on the clients' clipped values; build it with `gaussian_fixed`
    or `gaussian_adaptive`. Unweighted: every client counts once, as DP needs.

    State `<clip=...,seed=int64[2]>`; measurements
    `<dp_query_metrics=<clip=float32,noise_stddev=float32>,dp=<>>`
    (`noise_stddev` is that of the noise on the mean)."""

    def __init__(self, noise_multiplier, clients_per_round, clip_process, seed=None):
        self.noise_multiplier = float(noise_multiplier)
        self.clients_per_round = float(clients_per_round)
        self._clip = clip_process
        self._seed = seed

    @classmethod
    def gaussian_fixed(cls, noise_multiplier, clients_per_round, clip, seed=None):
        """A fixed clip: noise of standard deviation `noise_multiplier * clip` on the sum."""
        noise_multiplier, clients = _check(noise_multiplier, clients_per_round, "gaussian_fixed")
        clip = agg.finite_positive(clip, "DifferentiallyPrivateFactory.gaussian_fixed: clip")
        factory = cls(noise_multiplier, clients, fixed_estimate(clip), seed)
        factory.value_noise_multiplier = noise_multiplier
        return factory

    @classmethod
    def gaussian_adaptive(cls, noise_multiplier, clients_per_round, initial_l2_norm_clip=0.1,
                          target_unclipped_quantile=0.5, learning_rate=0.2,
                          clipped_count_stddev=None, seed=None):
        """An adaptive clip, moved each round toward the `target_unclipped_quantile` of the
        clients' norms. Part of the privacy budget goes to the count of unclipped clients
        (noise `clipped_count_stddev`, by default `0.05 * clients_per_round`), so the values
        get noise multiplier `(noise_multiplier**-2 - (2 * clipped_count_stddev)**-2)**-0.5`,
        as in TFF."""
        what = "gaussian_adaptive"
        noise_multiplier, clients = _check(noise_multiplier, clients_per_round, what)
        if clipped_count_stddev is None:
            clipped_count_stddev = 0.05 * clients if noise_multiplier > 0 else 0.0
        clipped_count_stddev = float(clipped_count_stddev)
        if noise_multiplier > 0:
            if clipped_count_stddev <= 0:
                raise ValueError(f"DifferentiallyPrivateFactory.{what}: clipped_count_stddev "
                                 f"must be > 0 with noise, found {clipped_count_stddev}.")
            rest = noise_multiplier ** -2 - (2 * clipped_count_stddev) ** -2
            if rest <= 0:
                raise ValueError(f"DifferentiallyPrivateFactory.{what}: noise_multiplier "
                                 f"{noise_multiplier} needs clipped_count_stddev > "
                                 f"{noise_multiplier / 2:g} (half of it), found "
                                 f"{clipped_count_stddev:g}; pass a larger "
                                 f"clipped_count_stddev or more clients_per_round.")
            value_multiplier = rest ** -0.5
        else:
            value_multiplier = 0.0
        estimator = QuantileEstimationProcess(
            initial_l2_norm_clip, target_unclipped_quantile, learning_rate,
            noise_stddev=clipped_count_stddev, expected_clients=clients,
            seed=None if seed is None else [int(seed), 1])
        factory = cls(noise_multiplier, clients, estimator, seed)
        factory.value_noise_multiplier = value_multiplier
        return factory

    def create(self, value_type) -> agg.AggregationProcess:
        value_type = agg.value_type_of(value_type, "DifferentiallyPrivateFactory.create",
                                       float_only=True)
        estimator, clients = self._clip, np.float32(self.clients_per_round)
        multiplier = np.float32(self.value_noise_multiplier)
        seed_words = new_seed(None if self._seed is None else [int(self._seed), 0])
        init_clip = estimator.initialize

        @tf_computation
        def initial_seed():
            import tensorflow as tf
            return tf.constant(seed_words, tf.int64)

        @federated_computation
        def initialize():
            return agg.server_struct(clip=init_clip(),
                                     seed=fi.federated_eval(initial_seed, SERVER))

        @tf_computation(value_type, FLOAT, SEED)
        def gaussian_noise(total, clip, seed):
            import tensorflow as tf
            parts = agg.tensors(total)
            seeds = tf.random.experimental.stateless_split(seed, len(parts) + 1)
            stddev = multiplier * clip
            noised = [(t + tf.random.stateless_normal(tf.shape(t), seeds[i], stddev=stddev,
                                                      dtype=t.dtype)) / clients
                      for i, t in enumerate(parts)]
            return Struct([("value", agg.packed(value_type, noised)), ("seed", seeds[-1]),
                           ("noise_stddev", stddev / clients)])
        mark_noise(gaussian_noise)

        clip_leaf = _clip_leaf(value_type)

        @federated_computation(*agg.next_parameters(agg.state_type(initialize), value_type))
        def next_fn(state, value):
            clip = estimator.report(state.clip)
            clipped = fi.federated_map(clip_leaf, fi.federated_zip(
                (value, fi.federated_broadcast(clip))))
            noised = fi.federated_map(gaussian_noise, fi.federated_zip(
                (fi.federated_sum(clipped.value), clip, state.seed)))
            new_state = agg.server_struct(clip=estimator.next(state.clip, clipped.norm),
                                          seed=noised.seed)
            # no clipped count: an exact count of the clients would leak past the noise
            metrics = agg.server_struct(clip=clip, noise_stddev=noised.noise_stddev)
            return agg.output(new_state, noised.value, agg.server_struct(
                dp_query_metrics=metrics, dp=fi.federated_value(Struct([]), SERVER)))

        return agg.AggregationProcess(initialize, next_fn)

    def __repr__(self):
        return (f"DifferentiallyPrivateFactory(noise_multiplier={self.noise_multiplier}, "
                f"clients_per_round={self.clients_per_round:g})")


def _check(noise_multiplier, clients_per_round, what):
    try:
        noise = float(noise_multiplier)
    except (TypeError, ValueError):
        noise = float("nan")
    if not math.isfinite(noise) or noise < 0:
        raise ValueError(f"DifferentiallyPrivateFactory.{what}: noise_multiplier must be a "
                         f"number >= 0, found {noise_multiplier!r}.")
    clients = agg.finite_positive(clients_per_round,
                                  f"DifferentiallyPrivateFactory.{what}: clients_per_round")
    return noise, clients
