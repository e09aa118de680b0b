"""`to_type`: coerce type specifications (dtypes, TF specs, nested containers) to fcore types.

TensorFlow is not imported here: TF objects are recognised by their attributes, so they can
only reach this code when the caller has already imported TensorFlow.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import sys

from fcore.types import core, dtypes


def to_type(spec):
    """Converts `spec` to an fcore `Type` (or returns `None` for `None`).

    Accepted: a `Type`; a dtype (`tf.int32`, `np.int32`, `'int32'`); a type in the text
    notation (`'<a=int32,b=float32[?]>'`); a `(dtype, shape)` pair;
    a `tf.TensorSpec`; a `tf.data.DatasetSpec` (a sequence); and dicts, lists, tuples,
    namedtuples, attrs or dataclass instances of these (structs). A list of `(name, spec)`
    pairs gives a named struct.
    """
    if spec is None or isinstance(spec, core.Type):
        return spec
    if _is_tensor_spec(spec):
        return core.TensorType(spec.dtype, spec.shape)
    if _is_dataset_spec(spec):
        return core.SequenceType(to_type(spec.element_spec))
    if isinstance(spec, tuple) and len(spec) == 2 and _is_shape_like(spec[1]) \
            and dtypes.is_dtype_like(spec[0]):
        return core.TensorType(spec[0], spec[1])
    if isinstance(spec, str) and not spec.isidentifier():  # text notation: 'float32[?,784]'
        from fcore.syntax.types import parse_type
        return parse_type(spec)
    if dtypes.is_dtype_like(spec) or isinstance(spec, str):
        return core.TensorType(spec)
    if _is_struct_like(spec):
        return core.StructType(spec)
    raise TypeError(f"Cannot convert {spec!r} (Python type {type(spec).__name__}) to an fcore "
                    f"type; expected a Type, a dtype, a (dtype, shape) pair, a tf.TensorSpec, a "
                    f"tf.data.DatasetSpec, or a dict/list/tuple/namedtuple of these.")


def constant_type(value):
    """The tensor type of a Python or NumPy constant: Python ints are int32, floats float32
    (TFF's defaults), strings `str`; NumPy values keep their dtype and shape. `None` for
    anything else."""
    import numpy as np
    if isinstance(value, (bool, np.bool_)):
        return core.TensorType(np.bool_)
    if isinstance(value, (np.ndarray, np.generic)):  # before float: np.float64 is a float
        return core.TensorType(value.dtype, value.shape)
    if isinstance(value, int):
        return core.TensorType(np.int32)
    if isinstance(value, float):
        return core.TensorType(np.float32)
    if isinstance(value, (str, bytes)):
        return core.TensorType(str)
    return None


def struct_items(spec):
    """Splits a struct specification into `((name or None, element spec), ...)` and the
    Python container it came from (or `None`)."""
    if isinstance(spec, core.StructType):
        return spec.items(), spec.python_container
    if isinstance(spec, collections.abc.Mapping):
        return tuple(spec.items()), type(spec)
    if _is_namedtuple(spec):
        return tuple(zip(spec._fields, spec)), type(spec)
    fields = _attrs_or_dataclass_fields(spec)
    if fields is not None:
        return tuple((name, getattr(spec, name)) for name in fields), type(spec)
    if isinstance(spec, (list, tuple)):
        items = tuple(_element(item) for item in spec)
        container = tuple if isinstance(spec, tuple) else None
        return items, container
    raise TypeError(f"Expected the elements of a struct (a list, tuple, dict or namedtuple), "
                    f"found {spec!r}.")


def value_items(value):
    """The elements of a Python container used as a struct value, and the container to
    give results back in: `(((name or None, element), ...), container)`, or `None` when
    `value` is not a container. A dict's keys are sorted unless it is ordered (an
    `OrderedDict`); namedtuples, attrs classes and dataclasses give their fields in order;
    lists and tuples are unnamed. (TF tensors and NumPy arrays are not containers.)"""
    from fcore.struct import Struct
    if isinstance(value, Struct):
        return tuple(value.items()), None
    if isinstance(value, collections.abc.Mapping):
        keys = list(value) if isinstance(value, collections.OrderedDict) else sorted(value)
        container = collections.OrderedDict if type(value) is dict else type(value)
        return tuple((k, value[k]) for k in keys), container
    if _is_namedtuple(value):
        return tuple(zip(value._fields, value)), type(value)
    fields = _attrs_or_dataclass_fields(value)
    if fields is not None:
        return tuple((name, getattr(value, name)) for name in fields), type(value)
    if isinstance(value, (list, tuple)):
        return tuple((None, v) for v in value), tuple
    return None


def _element(item):
    # A pair ('name', spec) is a named element; anything else is an unnamed one.
    if isinstance(item, tuple) and len(item) == 2 and (isinstance(item[0], str) or
                                                       item[0] is None):
        if not (isinstance(item[0], str) and item[0] in dtypes.DTYPES and
                _is_shape_like(item[1])):
            return item
    return None, item


def _is_struct_like(spec):
    return (isinstance(spec, (list, tuple, collections.abc.Mapping)) or
            _attrs_or_dataclass_fields(spec) is not None)


def _is_namedtuple(spec):
    return isinstance(spec, tuple) and hasattr(type(spec), "_fields")


def _attrs_or_dataclass_fields(spec):
    if isinstance(spec, type):
        return None
    if dataclasses.is_dataclass(spec):
        return [f.name for f in dataclasses.fields(spec)]
    attr = sys.modules.get("attr")
    if attr is not None and attr.has(type(spec)):
        return [f.name for f in attr.fields(type(spec))]
    return None


def _is_shape_like(value):
    if value is None:
        return False
    if hasattr(value, "as_list") and hasattr(value, "rank"):
        return True
    return isinstance(value, (list, tuple)) and all(
        d is None or (isinstance(d, int) and not isinstance(d, bool)) for d in value)


def _is_tensor_spec(spec):
    return type(spec).__name__ == "TensorSpec" and hasattr(spec, "dtype") and \
        hasattr(spec, "shape")


def _is_dataset_spec(spec):
    return type(spec).__name__ == "DatasetSpec" and hasattr(spec, "element_spec")


def parse_type_from_reduce(text):
    from fcore.syntax.types import parse_type
    return parse_type(text)
