"""Composable aggregations, as TFF's `tff.aggregators`: factories whose `create(value_type)`
(or `create(value_type, weight_type)`) builds an `AggregationProcess` of fcore computations.

    >>> factory = clipping_factory(1.0, MeanFactory())
    >>> process = factory.create(fcore.TensorType(np.float32, [3]), np.float32)
    >>> state = process.initialize()
    >>> state, result, measurements = process.next(state, values, weights)

See docs/learning.md for the factories and how they compose."""

from fcore.aggregators.core import (AggregationProcess, MeanFactory, MeasuredProcessOutput,
                                    SumFactory, UnweightedAggregationFactory,
                                    UnweightedMeanFactory, WeightedAggregationFactory)
from fcore.aggregators.estimation import (EstimationProcess, QuantileEstimationProcess,
                                          fixed_estimate)
from fcore.aggregators.order import MedianFactory, TrimmedMeanFactory
from fcore.aggregators.privacy import DifferentiallyPrivateFactory
from fcore.aggregators.robust import clipping_factory, zeroing_factory
from fcore.aggregators.secure import SecureSumFactory

PrivateQuantileEstimationProcess = QuantileEstimationProcess  # TFF's name

__all__ = ["AggregationProcess", "DifferentiallyPrivateFactory", "EstimationProcess",
           "MeanFactory", "MeasuredProcessOutput", "MedianFactory",
           "PrivateQuantileEstimationProcess", "QuantileEstimationProcess", "SecureSumFactory",
           "SumFactory", "TrimmedMeanFactory", "UnweightedAggregationFactory",
           "UnweightedMeanFactory", "WeightedAggregationFactory", "clipping_factory",
           "fixed_estimate", "zeroing_factory"]
