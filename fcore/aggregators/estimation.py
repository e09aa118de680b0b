"""Estimation processes: a norm that the clipping and zeroing factories use each round, either
fixed or adapted to the clients' values (a quantile estimate, as TFF's
`PrivateQuantileEstimationProcess` and Andrew et al., "Differentially private learning with
adaptive clipping", 2021).

An estimation process has three fcore computations:

    initialize: ( -> S@SERVER)
    next:       (<state=S@SERVER,value={float32}@CLIENTS> -> S@SERVER)
    report:     (S@SERVER -> float32@SERVER)
"""

from __future__ import annotations

import math

import numpy as np

from fcore.aggregators import core as agg
from fcore.audit import mark_noise
from fcore.struct import Struct
from fcore.tracing import intrinsics as fi
from fcore.tracing.computation import federated_computation, tf_computation
from fcore.types import core
from fcore.types.placements import CLIENTS, SERVER

FLOAT = core.TensorType(np.float32)
SEED = core.TensorType(np.int64, [2])


class EstimationProcess:
    """`initialize`, `next` and `report` (see the module's documentation)."""

    def __init__(self, initialize, next, report):  # noqa: A002 (TFF's name)
        self.initialize = initialize
        self.next = next
        self.report = report

    @property
    def state_type(self):
        return self.initialize.type_signature.result

    def __repr__(self):
        return (f"EstimationProcess(initialize: {self.initialize.type_signature}, next: "
                f"{self.next.type_signature}, report: {self.report.type_signature})")


def as_estimation_process(norm, what) -> EstimationProcess:
    """`norm` if it is an estimation process, else a fixed estimate of the number `norm`."""
    if isinstance(norm, EstimationProcess):
        return norm
    return fixed_estimate(agg.finite_positive(norm, what))


def fixed_estimate(value) -> EstimationProcess:
    """A constant: no state, `report` is always `value`."""
    initialize = agg.empty_state()
    state_type = initialize.type_signature.result

    @federated_computation(state_type, core.FederatedType(FLOAT, CLIENTS))
    def next_fn(state, value):
        return state

    constant = np.float32(value)

    @federated_computation(state_type)
    def report(state):
        return fi.federated_value(constant, SERVER)

    return EstimationProcess(initialize, next_fn, report)


def new_seed(seed=None):
    """Two int64 words seeding a stateless generator: from `seed` (an int), or fresh entropy."""
    words = np.random.SeedSequence(seed).generate_state(2, np.uint64) >> np.uint64(1)
    return words.astype(np.int64)


class QuantileEstimationProcess(EstimationProcess):
    """An estimate `C` of the `target_quantile` of the clients' values (their norms), updated
    each round geometrically: `C <- C * exp(-learning_rate * (b - target_quantile))`, where
    `b` is the fraction of clients whose value is at most `C`; `report` gives
    `C * multiplier + increment`.

    With `noise_stddev > 0` the count of such clients gets Gaussian noise of that standard
    deviation (from a stateless generator seeded by `seed`, its state part of the process
    state) and is divided by `expected_clients`, so that the estimate is differentially
    private; without noise `b` is the exact fraction. A round with no clients leaves `C`
    unchanged."""

    def __init__(self, initial_estimate, target_quantile, learning_rate, multiplier=1.0,
                 increment=0.0, noise_stddev=0.0, expected_clients=None, seed=None):
        what = "QuantileEstimationProcess"
        start = agg.finite_positive(initial_estimate, f"{what}: initial_estimate")
        if not 0 <= float(target_quantile) <= 1:
            raise ValueError(f"{what}: target_quantile must lie in [0, 1], found "
                             f"{target_quantile}.")
        rate = agg.finite_positive(learning_rate, f"{what}: learning_rate")
        if float(noise_stddev) < 0 or not math.isfinite(float(noise_stddev)):
            raise ValueError(f"{what}: noise_stddev must be >= 0, found {noise_stddev}.")
        noisy = float(noise_stddev) > 0
        if noisy:
            expected_clients = agg.finite_positive(expected_clients,
                                                   f"{what}: expected_clients (needed with "
                                                   f"noise)")
        self.target_quantile = float(target_quantile)
        self.learning_rate = rate
        self.multiplier = float(multiplier)
        self.increment = float(increment)
        self.noise_stddev = float(noise_stddev)
        self.expected_clients = expected_clients
        target, stddev = np.float32(target_quantile), np.float32(noise_stddev)
        seed_words = new_seed(seed)

        @tf_computation
        def initial():
            import tensorflow as tf
            fields = [("estimate", tf.constant(start, tf.float32))]
            if noisy:
                fields.append(("seed", tf.constant(seed_words, tf.int64)))
            return Struct(fields)

        @federated_computation
        def initialize():
            return fi.federated_eval(initial, SERVER)

        state_type = initialize.type_signature.result

        @tf_computation(FLOAT, FLOAT)
        def at_most(value, estimate):
            import tensorflow as tf
            return tf.cast(value <= estimate, tf.float32)

        @tf_computation(state_type.member, FLOAT, FLOAT)
        def quantile_update(state, below, clients):
            import tensorflow as tf
            fields = []
            if noisy:
                seeds = tf.random.experimental.stateless_split(state.seed, 2)
                below = below + tf.random.stateless_normal([], seeds[0], stddev=stddev)
                fraction = below / np.float32(expected_clients)
                fields.append(("seed", seeds[1]))
            else:
                fraction = below / clients
            estimate = state.estimate * tf.exp(-np.float32(rate) * (fraction - target))
            estimate = tf.where(tf.logical_and(clients > 0, tf.math.is_finite(estimate)),
                                estimate, state.estimate)
            return Struct([("estimate", estimate)] + fields)

        @federated_computation(state_type, core.FederatedType(FLOAT, CLIENTS))
        def next_fn(state, value):
            estimate = fi.federated_broadcast(state.estimate)
            below = fi.federated_map(at_most, fi.federated_zip((value, estimate)))
            clients = fi.federated_sum(fi.federated_map(agg.ones_leaf(FLOAT), value))
            return fi.federated_map(quantile_update, fi.federated_zip(
                (state, fi.federated_sum(below), clients)))

        if noisy:
            mark_noise(quantile_update)  # the count of clients below the estimate gets noise here
        scale, shift = np.float32(multiplier), np.float32(increment)

        @tf_computation(state_type.member)
        def reported(state):
            return state.estimate * scale + shift

        @federated_computation(state_type)
        def report(state):
            return fi.federated_map(reported, state)

        super().__init__(initialize, next_fn, report)

    @classmethod
    def no_noise(cls, initial_estimate, target_quantile, learning_rate, multiplier=1.0,
                 increment=0.0):
        """TFF's `PrivateQuantileEstimationProcess.no_noise`: the exact fraction."""
        return cls(initial_estimate, target_quantile, learning_rate, multiplier, increment)

