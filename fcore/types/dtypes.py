"""Tensor element types: one canonical NumPy dtype per name, and coercion from other spellings.

TensorFlow is never imported here. A `tf.DType` is recognised by duck typing (it has
`as_numpy_dtype`), so passing one works exactly when TensorFlow is already loaded.
"""

from __future__ import annotations

import numpy as np

# Printed name -> NumPy dtype. `str` is TFF's name for string tensors.
_NAMES = (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
)
DTYPES: dict[str, np.dtype] = {name: np.dtype(name) for name in _NAMES}
DTYPES["str"] = np.dtype(np.str_)

_BY_DTYPE: dict[np.dtype, str] = {dt: name for name, dt in DTYPES.items()}

DTYPE_NAMES = tuple(DTYPES)


def dtype_name(dtype: np.dtype) -> str:
    """The printed name of a canonical dtype (`int32`, `str`, ...)."""
    return _BY_DTYPE[dtype]


def to_dtype(spec) -> np.dtype:
    """Coerces `spec` to one of the canonical NumPy dtypes.

    Accepts a dtype name (`'int32'`, `'str'`), a NumPy dtype or scalar type (`np.int32`),
    the Python types `bool`, `int`, `float`, `str`, `bytes`, or a `tf.DType`.
    Raises `TypeError` naming `spec` when it is none of these.
    """
    if isinstance(spec, np.dtype) and spec in _BY_DTYPE:
        return spec
    if isinstance(spec, str):
        if spec in DTYPES:
            return DTYPES[spec]
        if spec in ("string", "bytes", "object"):
            return DTYPES["str"]
        raise TypeError(f"Unknown dtype {spec!r}; expected one of: {', '.join(DTYPE_NAMES)}.")
    if spec in (str, bytes, np.bytes_, np.str_, np.object_):
        return DTYPES["str"]
    if _is_tf_dtype(spec):  # without importing TF
        name = spec.name
        if name == "string":
            return DTYPES["str"]
        try:  # resource and variant have no NumPy dtype (a KeyError)
            return to_dtype(np.dtype(spec.as_numpy_dtype))
        except (TypeError, KeyError):
            raise TypeError(f"Unsupported TensorFlow dtype {name!r}; expected one of: "
                            f"{', '.join(DTYPE_NAMES)}.") from None
    try:
        dtype = np.dtype(spec)
    except TypeError:
        raise TypeError(f"Unknown dtype {spec!r}; expected one of: "
                        f"{', '.join(DTYPE_NAMES)}.") from None
    if dtype.kind in "USO":
        return DTYPES["str"]
    if dtype not in _BY_DTYPE:
        raise TypeError(f"Unsupported dtype {dtype}; expected one of: {', '.join(DTYPE_NAMES)}.")
    return dtype


def _is_tf_dtype(spec):
    """A `tf.DType` (looked up on its class: the property itself may raise)."""
    return not isinstance(spec, type) and hasattr(type(spec), "as_numpy_dtype")


def is_dtype_like(spec) -> bool:
    """True if `to_dtype(spec)` would succeed, without raising."""
    if isinstance(spec, (list, tuple, dict)) or spec is None:
        return False
    try:
        to_dtype(spec)
    except TypeError:
        return False
    return True
