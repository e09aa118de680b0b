"""`to_type`: coerce type specifications (dtypes, TF specs, nested containers) to fcore types.

TensorFlow is not imported here: TF objects are recognised by their attributes, so they can
only reach this code when the caller has already imported TensorFlow.
"""

from __future__ import annotations

import collections.abc

from fcore.struct import container_fields, is_namedtuple
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
        return parse_text(spec)
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
    if is_namedtuple(spec):
        return tuple(zip(spec._fields, spec)), type(spec)
    fields = container_fields(spec)
    if fields is not None:
        return tuple((name, getattr(spec, name)) for name in fields), type(spec)
    if isinstance(spec, (list, tuple)):
        items = tuple(_element(item) for item in spec)
        container = tuple if isinstance(spec, tuple) else None
        return items, container
    raise TypeError(f"Expected the elements of a struct (a list, tuple, dict or namedtuple), "
                    f"found {spec!r}.")


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
            container_fields(spec) is not None)


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


_text_parser = None  # set by fcore.syntax.types: the types layer does not import the parser


def set_text_parser(parse):
    """Installs the function that reads types in the text notation (`parse_type`)."""
    global _text_parser
    _text_parser = parse


def parse_text(text):
    """A type from its text notation, read by the installed parser."""
    if _text_parser is None:
        raise RuntimeError("No parser for the type notation is installed: import fcore.")
    return _text_parser(text)


def parse_type_from_reduce(text):
    return parse_text(text)
