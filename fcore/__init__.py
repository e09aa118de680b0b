"""fcore: a typed federated-computation language with TensorFlow leaves.

The public API is curated here; the implementation lives in the subpackages. Importing fcore
does not import TensorFlow: that happens when a `tf_computation` is traced or run.
"""

from fcore import aggregators, context_stack, mapreduce
from fcore.audit import audit
from fcore.execution.context import execution_context
from fcore.execution.errors import CardinalityError, ExecutionError
from fcore.tracing.intrinsics import (federated_aggregate, federated_average, federated_broadcast,
                                  federated_eval, federated_map, federated_max, federated_mean,
                                  federated_min, federated_secure_sum,
                                  federated_secure_sum_bitwidth, federated_sum, federated_value,
                                  federated_zip, sequence_map, sequence_reduce, sequence_sum)
from fcore.serialization import SerializationError, load, save
from fcore.struct import Struct
from fcore.syntax.computations import ComputationTypeError, parse_computation
from fcore.syntax.types import parse_type
from fcore.templates import IterativeProcess
from fcore.tracing.computation import (Computation, PolymorphicComputation,
                                       federated_computation, tf_computation)
from fcore.tracing.value import Value
from fcore.types import (CLIENTS, SERVER, AbstractType, FederatedType, FunctionType,
                         PlacementLiteral, PlacementType, SequenceType, StructType, TensorType,
                         Type, TypeMismatchError, TypeParseError, to_type)

__all__ = [
    "AbstractType", "CLIENTS", "CardinalityError", "Computation", "ComputationTypeError",
    "ExecutionError", "FederatedType", "FunctionType", "IterativeProcess", "PlacementLiteral",
    "PlacementType", "PolymorphicComputation", "SERVER", "SequenceType", "SerializationError",
    "Struct", "StructType", "TensorType", "Type", "TypeMismatchError", "TypeParseError", "Value",
    "aggregators", "audit",
    "context_stack", "execution_context", "mapreduce", "federated_aggregate", "federated_average",
    "federated_broadcast",
    "federated_computation", "federated_eval", "federated_map", "federated_max",
    "federated_mean", "federated_min", "federated_secure_sum", "federated_secure_sum_bitwidth",
    "federated_sum", "federated_value", "federated_zip", "load", "parse_computation",
    "parse_type", "save", "sequence_map", "sequence_reduce", "sequence_sum", "tf_computation",
    "to_type",
]
