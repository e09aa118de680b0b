"""Inferring the fcore type of a Python value, for polymorphic computations."""

from __future__ import annotations

import collections.abc
import sys


from fcore.struct import Struct
from fcore.types import core
from fcore.types.conversion import constant_type


def infer_type(value):
    """The type of a Python value: NumPy/Python scalars and arrays, tf tensors and datasets,
    `fcore.Struct`, dicts (sorted keys unless ordered), namedtuples, lists and tuples."""
    from fcore.tracing.computation import Computation
    from fcore.tracing.value import Value
    if isinstance(value, Value):
        return value.type_signature
    if isinstance(value, Computation):
        return value.type_signature
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        if isinstance(value, tf.data.Dataset):
            from fcore.types.conversion import to_type
            return core.SequenceType(to_type(value.element_spec))
        if isinstance(value, (tf.Tensor, tf.Variable)):
            return core.TensorType(value.dtype, value.shape)
    constant = constant_type(value)
    if constant is not None:
        return constant
    if isinstance(value, Struct):
        return core.StructType([(n, infer_type(v)) for n, v in value.items()])
    if isinstance(value, collections.OrderedDict):
        return core.StructType([(k, infer_type(v)) for k, v in value.items()], type(value))
    if isinstance(value, collections.abc.Mapping):
        return core.StructType([(k, infer_type(value[k])) for k in sorted(value)],
                               collections.OrderedDict)
    if isinstance(value, tuple) and hasattr(type(value), "_fields"):
        return core.StructType([(k, infer_type(v)) for k, v in zip(value._fields, value)],
                               type(value))
    if isinstance(value, (list, tuple)):
        return core.StructType([(None, infer_type(v)) for v in value], tuple)
    raise TypeError(f"Cannot infer an fcore type for {value!r} (Python type "
                    f"{type(value).__name__}); decorate the computation with types.")
