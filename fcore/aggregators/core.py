"""Aggregation processes and the basic factories: sums and means.

An aggregation is a pair of fcore computations, as in TFF's `tff.aggregators`:

    initialize: ( -> S@SERVER)
    next:       (<state=S@SERVER,value={V}@CLIENTS> -> <state=S@SERVER,result=V@SERVER,
                                                          measurements=M@SERVER>)

(weighted ones take `weight={W}@CLIENTS` too). A factory's `create(value_type)` (or
`create(value_type, weight_type)`) builds the pair for one value type; factories compose by
taking an inner factory, so a clipped, zeroed, noised mean is one program: printable, type
checked, saved with `fcore.save` and run by every executor."""

from __future__ import annotations

import abc
import collections
import math

import numpy as np

from fcore import structure
from fcore.computation import Computation
from fcore.struct import Struct, python_items
from fcore.templates import IterativeProcess
from fcore.tracing import intrinsics as fi
from fcore.tracing.computation import federated_computation, tf_computation
from fcore.types import core
from fcore.types.conversion import to_type
from fcore.types.placements import CLIENTS, SERVER

MeasuredProcessOutput = collections.namedtuple("MeasuredProcessOutput",
                                               ["state", "result", "measurements"])
MeasuredProcessOutput.__doc__ = """What an aggregation's `next` returns: the new state, the
aggregate, and measurements (all placed at the server)."""


class AggregationProcess(IterativeProcess):
    """`initialize: ( -> S@SERVER)` and `next: (<S@SERVER,{V}@CLIENTS[,{W}@CLIENTS]> ->
    <state=S@SERVER,result=V'@SERVER,measurements=M@SERVER>)`; called from Python, `next`
    returns a `MeasuredProcessOutput`."""

    def __init__(self, initialize: Computation, next: Computation):  # noqa: A002 (TFF's name)
        super().__init__(initialize, next)
        state = initialize.type_signature.result
        if not _at(state, SERVER):
            raise TypeError(f"AggregationProcess: initialize must return a server value, found "
                            f"{state}.")
        parameter = next.type_signature.parameter
        if not isinstance(parameter, core.StructType) or len(parameter) not in (2, 3) or \
                not all(_at(t, CLIENTS) for t in list(parameter)[1:]):
            raise TypeError(f"AggregationProcess: next must take <S@SERVER,{{V}}@CLIENTS> or "
                            f"<S@SERVER,{{V}}@CLIENTS,{{W}}@CLIENTS>, found {parameter}.")
        result = next.type_signature.result
        if not isinstance(result, core.StructType) or \
                tuple(result.names()) != MeasuredProcessOutput._fields or \
                not all(_at(t, SERVER) for t in result):
            raise TypeError(f"AggregationProcess: next must return <state=S@SERVER,"
                            f"result=V@SERVER,measurements=M@SERVER>, found {result}.")

    @property
    def is_weighted(self) -> bool:
        return len(self.next.type_signature.parameter) == 3

    def __repr__(self):
        return (f"AggregationProcess(initialize: {self.initialize.type_signature}, "
                f"next: {self.next.type_signature})")


def _at(type_, placement):
    return isinstance(type_, core.FederatedType) and type_.placement is placement


class UnweightedAggregationFactory(abc.ABC):
    """Builds an unweighted `AggregationProcess` for a value type."""

    @abc.abstractmethod
    def create(self, value_type) -> AggregationProcess:
        ...


class WeightedAggregationFactory(abc.ABC):
    """Builds a weighted `AggregationProcess` for a value type and a weight type."""

    @abc.abstractmethod
    def create(self, value_type, weight_type) -> AggregationProcess:
        ...


AggregationFactory = (UnweightedAggregationFactory, WeightedAggregationFactory)


# Building blocks shared by the factories -----------------------------------------------------

def value_type_of(value_type, what, float_only=False):
    """The fcore type of `value_type` (anything `fcore.to_type` reads), checked to be a tensor
    or a (nested) struct of tensors, of floating dtype if `float_only`."""
    try:
        type_ = to_type(value_type)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{what}: expected a value type (a tensor or struct of tensors), found "
                        f"{value_type!r} ({error}).") from None
    for leaf in structure.type_leaves(type_) if type_ is not None else [None]:
        if not isinstance(leaf, core.TensorType):
            raise TypeError(f"{what}: expected a value type made of tensors, found {type_}.")
        dtype = np.dtype(leaf.dtype)
        if float_only and not np.issubdtype(dtype, np.floating):
            raise TypeError(f"{what}: expected floating-point values, found {type_} (a "
                            f"{leaf.dtype} tensor).")
        if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
            raise TypeError(f"{what}: expected numeric values, found {type_}.")
    return type_


def weight_type_of(weight_type, what):
    type_ = value_type_of(weight_type, what)
    if not isinstance(type_, core.TensorType) or tuple(type_.shape) != ():
        raise TypeError(f"{what}: expected a scalar weight type (float32, ...), found {type_}.")
    return type_


def check_factory(factory, what):
    if not isinstance(factory, AggregationFactory):
        raise TypeError(f"{what}: expected an aggregation factory (fcore.aggregators."
                        f"SumFactory(), MeanFactory(), ...), found {factory!r}.")
    return factory


def is_weighted(factory) -> bool:
    return isinstance(factory, WeightedAggregationFactory)


def create(factory, value_type, weight_type=None):
    """`factory.create(value_type[, weight_type])` as its kind requires."""
    if is_weighted(factory):
        return factory.create(value_type, weight_type)
    return factory.create(value_type)


def tensors(value) -> list:
    """The tensors of a value inside a TF leaf (a tensor, `Struct` or Python container), in
    the order of its type."""
    items = python_items(value)
    if items is None:
        return [value]
    return [t for _, element in items[0] for t in tensors(element)]


def global_norm(values):
    """The L2 norm of all the tensors together, in float32 (NaN if any is not finite)."""
    import tensorflow as tf
    squares = [tf.reduce_sum(tf.square(tf.cast(t, tf.float32))) for t in values]
    return tf.sqrt(tf.add_n(squares)) if squares else tf.constant(0.0)


def packed(value_type, values):
    """Tensors in the order of `value_type`, as its value (a `Struct`, or the tensor)."""
    return structure.rebuild(value_type, list(values))


def server_struct(**fields):
    """A named struct of server values as one server value (`<>@SERVER` when empty)."""
    if not fields:
        return fi.federated_value(Struct([]), SERVER)
    return fi.federated_zip(Struct(list(fields.items())))


def empty_state():
    """`initialize` for a process with no state: `( -> <>@SERVER)`."""
    @federated_computation
    def initialize():
        return fi.federated_value(Struct([]), SERVER)
    return initialize


def next_parameters(state_type, value_type, weight_type=None):
    """The parameter types of `next`: state, value and (if weighted) weight."""
    types = [core.FederatedType(state_type, SERVER), core.FederatedType(value_type, CLIENTS)]
    if weight_type is not None:
        types.append(core.FederatedType(weight_type, CLIENTS))
    return types


def output(state, result, measurements):
    return MeasuredProcessOutput(state, result, measurements)


def call_next(process, state, value, weight=None):
    """Calls an inner process's `next` inside a trace; returns its `MeasuredProcessOutput`
    fields as server values."""
    out = process.next(state, value) if weight is None else process.next(state, value, weight)
    return MeasuredProcessOutput(out.state, out.result, out.measurements)


def state_type(initialize):
    return initialize.type_signature.result.member


# The basic factories ------------------------------------------------------------------------

class SumFactory(UnweightedAggregationFactory):
    """The sum of the clients' values (`federated_sum`); no state, no measurements."""

    def create(self, value_type) -> AggregationProcess:
        value_type = value_type_of(value_type, "SumFactory.create")
        initialize = empty_state()

        @federated_computation(*next_parameters(state_type(initialize), value_type))
        def next_fn(state, value):
            return output(state, fi.federated_sum(value), server_struct())

        return AggregationProcess(initialize, next_fn)

    def __repr__(self):
        return "SumFactory()"


class UnweightedMeanFactory(UnweightedAggregationFactory):
    """The mean of the clients' values, each counted once (`federated_mean`).

    With `value_sum_factory` / `count_sum_factory`, the values and the client count are summed
    by those factories (a secure sum, say) and divided at the server; measurements are
    `<mean_value=...,mean_count=...>` (theirs)."""

    def __init__(self, value_sum_factory=None, count_sum_factory=None):
        for name, factory in (("value_sum_factory", value_sum_factory),
                              ("count_sum_factory", count_sum_factory)):
            if factory is not None and not isinstance(check_factory(
                    factory, f"UnweightedMeanFactory: {name}"), UnweightedAggregationFactory):
                raise TypeError(f"UnweightedMeanFactory: {name} must be unweighted, found "
                                f"{factory!r}.")
        self._value_sum = value_sum_factory
        self._count_sum = count_sum_factory

    def create(self, value_type) -> AggregationProcess:
        value_type = value_type_of(value_type, "UnweightedMeanFactory.create", float_only=True)
        if self._value_sum is None and self._count_sum is None:
            initialize = empty_state()

            @federated_computation(*next_parameters(state_type(initialize), value_type))
            def next_fn(state, value):
                return output(state, fi.federated_mean(value),
                              server_struct(mean_value=fi.federated_value(Struct([]), SERVER),
                                            mean_count=fi.federated_value(Struct([]), SERVER)))
            return AggregationProcess(initialize, next_fn)
        value_sum = (self._value_sum or SumFactory()).create(value_type)
        count_sum = (self._count_sum or SumFactory()).create(core.TensorType(np.float32))
        return _ratio_process(value_sum, count_sum, value_type, None, ("mean_value", "mean_count"),
                              no_nan=False)

    def __repr__(self):
        return "UnweightedMeanFactory()"


class MeanFactory(WeightedAggregationFactory):
    """The weighted mean of the clients' values, `sum(w * v) / sum(w)`
    (`federated_weighted_mean`); a round whose weights sum to zero gives NaN, or zeros with
    `no_nan_division=True`. Measurements: `<mean_value=...,mean_weight=...>`, those of the
    inner `value_sum_factory` / `weight_sum_factory` if given."""

    def __init__(self, value_sum_factory=None, weight_sum_factory=None, no_nan_division=False):
        for name, factory in (("value_sum_factory", value_sum_factory),
                              ("weight_sum_factory", weight_sum_factory)):
            if factory is not None and not isinstance(check_factory(
                    factory, f"MeanFactory: {name}"), UnweightedAggregationFactory):
                raise TypeError(f"MeanFactory: {name} must be unweighted, found {factory!r}.")
        self._value_sum = value_sum_factory
        self._weight_sum = weight_sum_factory
        self._no_nan = bool(no_nan_division)

    def create(self, value_type, weight_type=np.float32) -> AggregationProcess:
        value_type = value_type_of(value_type, "MeanFactory.create", float_only=True)
        weight_type = weight_type_of(weight_type, "MeanFactory.create (weight)")
        if self._value_sum is None and self._weight_sum is None and not self._no_nan:
            initialize = empty_state()

            @federated_computation(*next_parameters(state_type(initialize), value_type,
                                                    weight_type))
            def next_fn(state, value, weight):
                weight = fi.federated_map(_cast_leaf(weight_type, np.float32), weight) \
                    if weight_type.dtype != np.float32 else weight
                return output(state, fi.federated_mean(value, weight),
                              server_struct(mean_value=fi.federated_value(Struct([]), SERVER),
                                            mean_weight=fi.federated_value(Struct([]), SERVER)))
            return AggregationProcess(initialize, next_fn)
        value_sum = (self._value_sum or SumFactory()).create(value_type)
        weight_sum = (self._weight_sum or SumFactory()).create(core.TensorType(np.float32))
        return _ratio_process(value_sum, weight_sum, value_type, weight_type,
                              ("mean_value", "mean_weight"), no_nan=self._no_nan)

    def __repr__(self):
        return "MeanFactory()"


def _ratio_process(numerator_sum, denominator_sum, value_type, weight_type, names, no_nan):
    """A mean as two inner sums divided at the server: of the values times the weights and of
    the weights, or (unweighted, `weight_type` None) of the values and of ones."""
    init_num, init_den = numerator_sum.initialize, denominator_sum.initialize

    @federated_computation
    def initialize():
        return server_struct(value_sum_process=init_num(), weight_sum_process=init_den())

    divide = _divide_leaf(value_type, no_nan)
    parameters = next_parameters(state_type(initialize), value_type, weight_type)

    def body(state, value, weight=None):
        if weight is None:
            scaled, denominator = value, fi.federated_map(ones_leaf(value_type), value)
        else:
            scaled = fi.federated_map(_scale_leaf(value_type, weight_type),
                                      fi.federated_zip((value, weight)))
            denominator = fi.federated_map(_cast_leaf(weight_type, np.float32), weight)
        num = call_next(numerator_sum, state.value_sum_process, scaled)
        den = call_next(denominator_sum, state.weight_sum_process, denominator)
        result = fi.federated_map(divide, fi.federated_zip((num.result, den.result)))
        return output(server_struct(value_sum_process=num.state, weight_sum_process=den.state),
                      result, server_struct(**{names[0]: num.measurements,
                                               names[1]: den.measurements}))

    if weight_type is None:
        @federated_computation(*parameters)
        def next_fn(state, value):
            return body(state, value)
    else:
        @federated_computation(*parameters)
        def next_fn(state, value, weight):
            return body(state, value, weight)
    return AggregationProcess(initialize, next_fn)


def _cast_leaf(from_type, dtype):
    @tf_computation(from_type)
    def cast(value):
        import tensorflow as tf
        return tf.cast(value, dtype)
    return cast


def ones_leaf(value_type):
    """`(V -> float32)`: 1.0 for every client (a sum of it counts the clients)."""
    @tf_computation(value_type)
    def one(value):
        import tensorflow as tf
        return tf.constant(1.0, tf.float32)
    return one


def _scale_leaf(value_type, weight_type):
    @tf_computation(value_type, weight_type)
    def scale(value, weight):
        import tensorflow as tf
        return packed(value_type, [t * tf.cast(weight, t.dtype) for t in tensors(value)])
    return scale


def _divide_leaf(value_type, no_nan):
    @tf_computation(value_type, np.float32)
    def divide(total, count):
        import tensorflow as tf
        op = tf.math.divide_no_nan if no_nan else tf.math.divide
        return packed(value_type, [op(t, tf.cast(count, t.dtype)) for t in tensors(total)])
    return divide


def finite_positive(number, what):
    """`number` as a float, checked to be finite and > 0."""
    try:
        number = float(number)
    except (TypeError, ValueError):
        raise TypeError(f"{what}: expected a positive number, found {number!r}.") from None
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{what}: expected a finite number > 0, found {number}.")
    return number
