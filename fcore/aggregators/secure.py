"""Secure summation, as TFF's `SecureSumFactory`: each client's value is clipped to known
bounds, mapped to non-negative integers, and summed with `federated_secure_sum_bitwidth`, so
the server learns only the sum; the server maps the sum back.

Integer values (integer thresholds) are summed exactly. Floating-point values (float
thresholds, or an `EstimationProcess` that adapts the bound each round) are quantised to 32
bits: the sum is within `n * (upper - lower) / 2**32` of the exact sum of the clipped values
(see `SecureSumFactory`)."""

from __future__ import annotations

import math

import numpy as np

from fcore import structure
from fcore.aggregators import core as agg
from fcore.aggregators.estimation import FLOAT, EstimationProcess
from fcore.struct import Struct
from fcore.tracing import intrinsics as fi
from fcore.tracing.computation import federated_computation, tf_computation
from fcore.types import core
from fcore.types.placements import CLIENTS, SERVER

COUNT = np.int32
#: The quantisation levels of a floating-point value: integers in [0, 2**32 - 1], as TFF.
BITS = 32
LEVELS = 2 ** BITS - 1
_INT64_MAX = int(np.iinfo(np.int64).max)


class SecureSumFactory(agg.UnweightedAggregationFactory):
    """The sum of the clients' values through `federated_secure_sum_bitwidth`.

    `upper_bound_threshold` and `lower_bound_threshold` are the bounds each client's values
    are clipped to (coordinate by coordinate) before they are summed; with only the upper one,
    the lower one is its negative (it must then be > 0). They are

    * integers, for integer values: each value is clipped, shifted to
      `[0, upper - lower]` and summed exactly with bitwidth `ceil(log2(upper - lower + 1))`
      in int64 (a total that does not fit int64, shifted or not, or the values' dtype is an
      error, not wrapped around);
    * floats, for floating-point values: each clipped value `x` becomes the integer
      `round(x * s) - round(lower * s)` in `[0, 2**32 - 1]`, with `s = (2**32 - 1) /
      (upper - lower)`, and the server turns the sum of those back into
      `(sum + n * round(lower * s)) / s` (in float64) for `n` clients, so that zeros sum to
      exactly zero. Each client's value moves by at most half a step, `(upper - lower) /
      (2 * (2**32 - 1))`: the result is within `n * (upper - lower) / 2**32` of the exact
      sum of the clipped values, plus the rounding of that float64 result to the values'
      dtype. A NaN coordinate is summed as 0 (clipped); use `zeroing_factory` to leave such
      clients out;
    * or `EstimationProcess`es (floating-point values only), which adapt the bounds each
      round: `report` gives the bound, and `next` sees each client's largest absolute value
      (with one process: the bounds are `[-b, b]`, `b` the report, clamped at 0) or its
      largest and smallest values (with two processes, the lower bound's process sees the
      smallest), as TFF's `secure_aggregator` does with a `QuantileEstimationProcess`.

    As in TFF, a structured value has one dtype throughout, and the value is summed in one
    `federated_secure_sum_bitwidth`, the client count in another (bitwidth 1).

    State: `<>` for fixed bounds, the estimation process's state (one process) or
    `<upper_bound=...,lower_bound=...>` (two). Measurements, as TFF:
    `<secure_upper_clipped_count=int32,secure_lower_clipped_count=int32,
    secure_upper_threshold=D,secure_lower_threshold=D>` (the clients with some coordinate
    above / below the bounds, before clipping, and the bounds used, in the values' dtype D).
    """

    def __init__(self, upper_bound_threshold, lower_bound_threshold=None):
        what = "SecureSumFactory"
        upper, lower = upper_bound_threshold, lower_bound_threshold
        self._kind = _kind(upper, f"{what}: upper_bound_threshold")
        if lower is not None and _kind(lower, f"{what}: lower_bound_threshold") != self._kind:
            raise TypeError(f"{what}: upper_bound_threshold and lower_bound_threshold must be "
                            f"of the same kind (two ints, two floats or two estimation "
                            f"processes), found {upper!r} and {lower!r}.")
        if self._kind == "process":
            for name, process in (("upper_bound_threshold", upper),
                                  ("lower_bound_threshold", lower)):
                if process is not None:
                    _check_bound_process(process, f"{what}: {name}")
        else:
            convert = int if self._kind == "int" else float
            upper = convert(upper)
            if self._kind == "float" and not math.isfinite(upper):
                raise ValueError(f"{what}: expected a finite upper_bound_threshold, found "
                                 f"{upper}.")
            if lower is None:
                if upper <= 0:
                    raise ValueError(f"{what}: with only upper_bound_threshold, it bounds the "
                                     f"absolute value and must be > 0, found {upper}.")
                lower = -upper
            else:
                lower = convert(lower)
                if self._kind == "float" and not math.isfinite(lower):
                    raise ValueError(f"{what}: expected a finite lower_bound_threshold, "
                                     f"found {lower}.")
                if upper <= lower:
                    raise ValueError(f"{what}: expected upper_bound_threshold > "
                                     f"lower_bound_threshold, found {upper} <= {lower}.")
            if self._kind == "int" and upper - lower > _INT64_MAX:
                raise ValueError(f"{what}: the range upper_bound_threshold - "
                                 f"lower_bound_threshold must fit int64, found "
                                 f"{upper} - {lower} = {upper - lower}.")
        self._upper, self._lower = upper, lower

    @property
    def upper_bound_threshold(self):
        return self._upper

    @property
    def lower_bound_threshold(self):
        return self._lower

    def create(self, value_type) -> agg.AggregationProcess:
        what = "SecureSumFactory.create"
        value_type = agg.value_type_of(value_type, what)
        leaves = structure.type_leaves(value_type)
        dtypes = sorted({np.dtype(leaf.dtype).name for leaf in leaves})
        if len(dtypes) > 1:
            raise TypeError(f"{what}: expected one dtype throughout the value (as TFF), found "
                            f"{value_type} ({', '.join(dtypes)}).")
        dtype = np.dtype(leaves[0].dtype) if leaves else \
            np.dtype(np.int32 if self._kind == "int" else np.float32)  # (an empty struct)
        if self._kind == "int":
            if dtype.kind not in "iu":
                raise TypeError(f"{what}: integer thresholds ({self._upper}, {self._lower}) "
                                f"sum integer values, found {value_type}; give float "
                                f"thresholds for floating-point values.")
            if dtype == np.uint64:
                raise TypeError(f"{what}: expected integer values of at most 63 bits "
                                f"(int64, uint32, ...), found {value_type}.")
            info = np.iinfo(dtype)
            for name, bound in (("upper", self._upper), ("lower", self._lower)):
                if not info.min <= bound <= info.max:
                    raise ValueError(f"{what}: the {name} bound {bound} is outside the range "
                                     f"of {dtype.name}, the dtype of {value_type}.")
        elif dtype.kind != "f":
            kind, hint = ("float", "; give integer thresholds for integer values") \
                if self._kind == "float" else ("estimated", "")
            raise TypeError(f"{what}: {kind} thresholds sum floating-point values, found "
                            f"{value_type}{hint}.")
        elif self._kind == "float":
            for name, bound in (("upper", self._upper), ("lower", self._lower)):
                with np.errstate(over="ignore"):
                    if not np.isfinite(dtype.type(bound)):
                        raise ValueError(f"{what}: the {name} bound {bound} is outside the "
                                         f"range of {dtype.name}, the dtype of {value_type}.")
        return _process(self, value_type, dtype)

    def __repr__(self):
        if self._kind == "process":
            return "SecureSumFactory(<estimated bounds>)"
        return f"SecureSumFactory({self._upper!r}, {self._lower!r})"


def _kind(threshold, what):
    if isinstance(threshold, EstimationProcess):
        return "process"
    if isinstance(threshold, (bool, np.bool_)):
        raise TypeError(f"{what}: expected an int, a float or an EstimationProcess, found "
                        f"{threshold!r}.")
    if isinstance(threshold, (int, np.integer)):
        return "int"
    if isinstance(threshold, (float, np.floating)):
        return "float"
    raise TypeError(f"{what}: expected an int, a float or an EstimationProcess, found "
                    f"{threshold!r}.")


def _check_bound_process(process, what):
    report = process.report.type_signature.result
    if not (isinstance(report, core.FederatedType) and report.placement is SERVER and
            FLOAT.is_assignable_from(report.member)):
        raise TypeError(f"{what}: expected an estimation process whose report is a float "
                        f"at the server (float32@SERVER), found {report}.")
    parameter = process.next.type_signature.parameter
    client = core.FederatedType(FLOAT, CLIENTS)
    if not (isinstance(parameter, core.StructType) and len(parameter) == 2 and
            parameter[1].is_assignable_from(client)):
        raise TypeError(f"{what}: expected an estimation process whose next takes "
                        f"<state,{client}>, found {parameter}.")


# The process --------------------------------------------------------------------------------

def _process(factory, value_type, dtype):
    kind = factory._kind
    upper, lower = factory._upper, factory._lower
    bounds_type = core.StructType([("upper", core.TensorType(dtype)),
                                   ("lower", core.TensorType(dtype))])
    if kind != "process":
        initialize = agg.empty_state()
        constant = Struct([("upper", dtype.type(upper)), ("lower", dtype.type(lower))])

        def bounds_of(state):
            return fi.federated_value(constant, SERVER)

        def next_state(state, client):
            return state
    elif lower is None:
        initialize = upper.initialize
        symmetric = _symmetric_bounds(dtype)

        def bounds_of(state):
            return fi.federated_map(symmetric, upper.report(state))

        def next_state(state, client):
            return upper.next(state, client.extent)
    else:
        init_upper, init_lower = upper.initialize, lower.initialize

        @federated_computation
        def initialize():
            return agg.server_struct(upper_bound=init_upper(), lower_bound=init_lower())

        ordered = _ordered_bounds(dtype)

        def bounds_of(state):
            return fi.federated_map(ordered, fi.federated_zip(
                (upper.report(state.upper_bound), lower.report(state.lower_bound))))

        def next_state(state, client):
            return agg.server_struct(upper_bound=upper.next(state.upper_bound, client.max),
                                     lower_bound=lower.next(state.lower_bound, client.min))

    integer = kind == "int"
    parameters_leaf = _quantisation(bounds_type, integer)
    client_leaf = _client_leaf(value_type, parameters_leaf.type_signature.result, integer)
    server_leaf = _server_leaf(value_type, client_leaf.type_signature.result.value,
                               parameters_leaf.type_signature.result, integer)
    bitwidth = max(1, (upper - lower).bit_length()) if integer else BITS
    one = _one_leaf(value_type)

    @federated_computation(*agg.next_parameters(agg.state_type(initialize), value_type))
    def next_fn(state, value):
        bounds = bounds_of(state)
        parameters = fi.federated_map(parameters_leaf, bounds)
        client = fi.federated_map(client_leaf, fi.federated_zip(
            (value, fi.federated_broadcast(parameters))))
        total = fi.federated_secure_sum_bitwidth(client.value, bitwidth)
        clients = fi.federated_secure_sum_bitwidth(fi.federated_map(one, value), 1)
        result = fi.federated_map(server_leaf, fi.federated_zip((total, clients, parameters)))
        measurements = agg.server_struct(
            secure_upper_clipped_count=fi.federated_secure_sum_bitwidth(client.upper_clipped,
                                                                        1),
            secure_lower_clipped_count=fi.federated_secure_sum_bitwidth(client.lower_clipped,
                                                                        1),
            secure_upper_threshold=bounds.upper, secure_lower_threshold=bounds.lower)
        return agg.output(next_state(state, client), result, measurements)

    return agg.AggregationProcess(initialize, next_fn)


def _symmetric_bounds(dtype):
    @tf_computation(FLOAT)
    def symmetric(bound):
        import tensorflow as tf
        bound = tf.cast(tf.maximum(bound, 0.0), dtype)
        return Struct([("upper", bound), ("lower", -bound)])
    return symmetric


def _ordered_bounds(dtype):
    @tf_computation(FLOAT, FLOAT)
    def ordered(upper, lower):
        import tensorflow as tf
        return Struct([("upper", tf.cast(tf.maximum(upper, lower), dtype)),
                       ("lower", tf.cast(lower, dtype))])
    return ordered


def _quantisation(bounds_type, integer):
    """`(bounds -> parameters)` at the server: what the clients need to map their values to
    integers (and the server to map the sum back), computed once for both."""
    @tf_computation(bounds_type)
    def parameters(bounds):
        import tensorflow as tf
        if integer:
            return Struct([("upper", tf.cast(bounds.upper, tf.int64)),
                           ("lower", tf.cast(bounds.lower, tf.int64))])
        upper = tf.cast(bounds.upper, tf.float64)
        lower = tf.cast(bounds.lower, tf.float64)
        scale = tf.math.divide_no_nan(tf.constant(float(LEVELS), tf.float64), upper - lower)
        anchor = tf.round(lower * scale)
        # x * scale - anchor, as (x - lower) * scale + offset: well conditioned for x near
        # lower, and exact (-anchor) for x = 0.
        return Struct([("upper", upper), ("lower", lower), ("scale", scale),
                       ("anchor", anchor), ("offset", lower * scale - anchor)])
    return parameters


def _client_leaf(value_type, parameters_type, integer):
    @tf_computation(value_type, parameters_type)
    def prepare(value, parameters):
        import tensorflow as tf
        parts = agg.tensors(value)
        if integer:
            upper, lower = parameters.upper, parameters.lower
            shifted = [tf.clip_by_value(tf.cast(t, tf.int64), lower, upper) - lower
                       for t in parts]
        else:
            upper, lower = parameters.upper, parameters.lower
            shifted = []
            for t in parts:
                x = tf.cast(t, tf.float64)
                x = tf.clip_by_value(tf.where(tf.math.is_nan(x), tf.zeros_like(x), x),
                                     lower, upper)
                q = tf.round((x - lower) * parameters.scale + parameters.offset)
                shifted.append(tf.cast(tf.clip_by_value(q, 0.0, float(LEVELS)), tf.int64))
        highest = _extreme(parts, tf.reduce_max, tf)
        lowest = _extreme(parts, tf.reduce_min, tf)
        high = tf.cast(highest, upper.dtype)
        low = tf.cast(lowest, lower.dtype)
        return Struct([
            ("value", agg.packed(value_type, shifted)),
            ("upper_clipped", tf.cast(high > upper, COUNT)),
            ("lower_clipped", tf.cast(low < lower, COUNT)),
            ("extent", tf.cast(tf.maximum(tf.abs(highest), tf.abs(lowest)), tf.float32)),
            ("max", tf.cast(highest, tf.float32)),
            ("min", tf.cast(lowest, tf.float32))])
    return prepare


def _extreme(parts, reduce, tf):
    """The largest (smallest) coordinate of all the tensors (a float64 for floats, int64
    for integers); the identity of the reduction for an empty value."""
    wide = [tf.cast(t, tf.float64 if t.dtype.is_floating else tf.int64) for t in parts]
    if not wide:
        return tf.constant(0.0, tf.float64)
    return reduce(tf.stack([reduce(t) for t in wide]))


def _server_leaf(value_type, summed_type, parameters_type, integer):
    @tf_computation(summed_type, np.int32, parameters_type)
    def restore(total, clients, parameters):
        import tensorflow as tf
        restored = []
        count = tf.cast(clients, tf.int64)
        for t, leaf_type in zip(agg.tensors(total), structure.type_leaves(value_type)):
            dtype = np.dtype(leaf_type.dtype)
            if integer:
                restored.append(_integer_total(t, count, parameters.lower, dtype, tf))
                continue
            n = tf.cast(count, tf.float64)
            summed = (tf.cast(t, tf.float64) + n * parameters.anchor) / parameters.scale
            summed = tf.where(parameters.scale > 0, summed, n * parameters.lower)
            restored.append(tf.cast(summed, dtype))
        return agg.packed(value_type, restored)
    return restore


def _integer_total(shifted_sum, count, lower, dtype, tf):
    """`shifted_sum + count * lower` in int64, as `dtype`; a total that does not fit (in int64
    along the way, or in `dtype`) stops the computation instead of wrapping around."""
    info = np.iinfo(dtype)
    limit = tf.math.floordiv(tf.constant(_INT64_MAX, tf.int64), tf.maximum(count, 1))
    offset = count * lower
    total = shifted_sum + offset
    fits = tf.logical_and(tf.logical_and(lower >= -limit, lower <= limit),
                          tf.logical_not(tf.logical_and(offset > 0, total < offset)))
    fits = tf.logical_and(fits, tf.logical_and(
        tf.reduce_all(total >= int(info.min)), tf.reduce_all(total <= int(info.max))))
    message = (f"SecureSumFactory: the sum of the clipped values does not fit {dtype.name} "
               f"(the dtype of the values); declare the values with a wider dtype, or narrow "
               f"the thresholds")
    check = tf.debugging.Assert(tf.reduce_all(fits), [message])
    with tf.control_dependencies([check]):
        return tf.cast(total, dtype)


def _one_leaf(value_type):
    @tf_computation(value_type)
    def one(value):
        import tensorflow as tf
        return tf.constant(1, COUNT)
    return one
