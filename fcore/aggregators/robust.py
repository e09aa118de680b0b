"""Clipping and zeroing: `clipping_factory` scales each client's value to an L2 norm of at
most the clipping norm (all its tensors together); `zeroing_factory` replaces a value whose
norm is above the zeroing norm, or that is not finite, by zeros. Either norm may be a number
or an `EstimationProcess` (adaptive: a quantile of the clients' norms). Both wrap an inner
factory, and report how many clients they clipped or zeroed."""

from __future__ import annotations

import numpy as np

from fcore.aggregators import core as agg
from fcore.aggregators.estimation import FLOAT, as_estimation_process
from fcore.struct import Struct
from fcore.tracing import intrinsics as fi
from fcore.tracing.computation import federated_computation, tf_computation

INT = np.int32


def clipping_factory(clipping_norm, inner_agg_factory):
    """Clips each client's value to L2 norm `clipping_norm` (a number, or an estimation process
    such as `QuantileEstimationProcess`) before `inner_agg_factory` aggregates it.

    State `<clipping_norm=...,inner_agg=...>`; measurements
    `<clipping=(inner),clipping_norm=float32,clipped_count=int32>`."""
    estimator = as_estimation_process(clipping_norm, "clipping_factory: clipping_norm")
    agg.check_factory(inner_agg_factory, "clipping_factory: inner_agg_factory")
    return _wrapper(inner_agg_factory, estimator, _clip_leaf, "clipping", "clipped")


def zeroing_factory(zeroing_norm, inner_agg_factory, norm_order=2.0):
    """Replaces a client's value by zeros when its norm (of order `norm_order`: 1, 2 or inf,
    over all its tensors together) is above `zeroing_norm` (a number or an estimation
    process), or when it has a NaN or infinity; weights are left as they are, as in TFF.

    State `<zeroing_norm=...,inner_agg=...>`; measurements
    `<zeroing=(inner),zeroing_norm=float32,zeroed_count=int32>`."""
    estimator = as_estimation_process(zeroing_norm, "zeroing_factory: zeroing_norm")
    agg.check_factory(inner_agg_factory, "zeroing_factory: inner_agg_factory")
    order = float(norm_order)
    if order not in (1.0, 2.0, float("inf")):
        raise ValueError(f"zeroing_factory: norm_order must be 1, 2 or inf, found {norm_order}.")
    return _wrapper(inner_agg_factory, estimator,
                    lambda value_type: _zero_leaf(value_type, order), "zeroing", "zeroed")


def _wrapper(inner, estimator, make_leaf, prefix, counted):
    base = (agg.WeightedAggregationFactory if agg.is_weighted(inner)
            else agg.UnweightedAggregationFactory)

    class Factory(base):
        def create(self, value_type, weight_type=np.float32):
            what = f"{prefix.replace('ing', '')}ing_factory.create"
            value_type = agg.value_type_of(value_type, what, float_only=True)
            weighted = agg.is_weighted(inner)
            if weighted:
                weight_type = agg.weight_type_of(weight_type, f"{what} (weight)")
            inner_process = agg.create(inner, value_type, weight_type if weighted else None)
            init_norm, init_inner = estimator.initialize, inner_process.initialize

            @federated_computation
            def initialize():
                return agg.server_struct(**{f"{prefix}_norm": init_norm(),
                                            "inner_agg": init_inner()})

            leaf = make_leaf(value_type)
            parameters = agg.next_parameters(agg.state_type(initialize), value_type,
                                             weight_type if weighted else None)

            def body(state, value, weight=None):
                norm_state = getattr(state, f"{prefix}_norm")
                norm = estimator.report(norm_state)
                treated = fi.federated_map(leaf, fi.federated_zip(
                    (value, fi.federated_broadcast(norm))))
                out = agg.call_next(inner_process, state.inner_agg, treated.value, weight)
                count = fi.federated_sum(treated.count)
                new_norm_state = estimator.next(norm_state, treated.norm)
                return agg.output(
                    agg.server_struct(**{f"{prefix}_norm": new_norm_state,
                                         "inner_agg": out.state}),
                    out.result,
                    agg.server_struct(**{prefix: out.measurements, f"{prefix}_norm": norm,
                                         f"{counted}_count": count}))

            if weighted:
                @federated_computation(*parameters)
                def next_fn(state, value, weight):
                    return body(state, value, weight)
            else:
                @federated_computation(*parameters)
                def next_fn(state, value):
                    return body(state, value)
            return agg.AggregationProcess(initialize, next_fn)

        def __repr__(self):
            return f"{prefix}_factory({estimator!r}, {inner!r})"

    Factory.__name__ = Factory.__qualname__ = f"{prefix.capitalize()}Factory"
    return Factory()


def _clip_leaf(value_type):
    @tf_computation(value_type, FLOAT)
    def clip(value, clipping_norm):
        import tensorflow as tf
        parts = agg.tensors(value)
        norm = agg.global_norm(parts)
        scale = tf.minimum(1.0, clipping_norm / norm)  # 1 for a zero norm (x / 0 = inf)
        clipped = [t * tf.cast(scale, t.dtype) for t in parts]
        return Struct([("value", agg.packed(value_type, clipped)), ("norm", norm),
                       ("count", tf.cast(norm > clipping_norm, INT))])
    return clip


def _zero_leaf(value_type, order):
    @tf_computation(value_type, FLOAT)
    def zero(value, zeroing_norm):
        import tensorflow as tf
        parts = agg.tensors(value)
        if order == 2.0:
            norm = agg.global_norm(parts)
        elif order == 1.0:
            norm = tf.add_n([tf.reduce_sum(tf.abs(tf.cast(t, tf.float32))) for t in parts])
        else:
            norm = tf.reduce_max([tf.reduce_max(tf.abs(tf.cast(t, tf.float32)))
                                  for t in parts])
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(t)) for t in parts])
        keep = tf.logical_and(finite, norm <= zeroing_norm)
        kept = [tf.where(keep, t, tf.zeros_like(t)) for t in parts]
        return Struct([("value", agg.packed(value_type, kept)), ("norm", norm),
                       ("count", tf.cast(tf.logical_not(keep), INT))])
    return zero
