"""Inferring the fcore type of a Python value, for polymorphic computations."""

from __future__ import annotations

import sys

from fcore.types import core
from fcore.struct import python_items
from fcore.types.conversion import constant_type


def infer_type(value):
    """The type of a Python value: NumPy/Python scalars and arrays, tf tensors and datasets,
    `fcore.Struct`, dicts (sorted keys unless ordered), namedtuples, lists and tuples."""
    from fcore.computation import Computation
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
    items = python_items(value)
    if items is not None:
        pairs, container = items
        return core.StructType([(n, infer_type(v)) for n, v in pairs], container)
    raise TypeError(f"Cannot infer an fcore type for {value!r} (Python type "
                    f"{type(value).__name__}); decorate the computation with types.")
