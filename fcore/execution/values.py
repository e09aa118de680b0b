"""Call-time values: checking user values against types, and converting them both ways.

Runtime representation (what `to_runtime` returns and `to_python` accepts):
tensors are NumPy values of exactly the type's dtype, 0-d ones NumPy scalars (`np.int32(5)`);
string tensors hold bytes as TensorFlow's `.numpy()` gives them: a scalar is a Python `bytes`,
an array an `object` array of `bytes` (`str` is encoded as UTF-8). Structs are `fcore.Struct`
with the type's names; sequences a list of elements or a `tf.data.Dataset`; federated values
a list with one member per client, or one member when all-equal; functions the object given.
TensorFlow is never imported here: its tensors and datasets are recognised only once loaded.
"""

from __future__ import annotations

import collections
import collections.abc
import sys

import numpy as np

from fcore.execution.errors import DATASET_CHECK
from fcore.struct import Struct, is_namedtuple, pack, python_items
from fcore.types import core, dtypes
from fcore.types.assignability import first_difference
from fcore.types.conversion import to_type
from fcore.types.errors import TypeMismatchError
from fcore.types.placements import CLIENTS

_STR = dtypes.DTYPES["str"]


def to_runtime(value, type_spec, path=""):
    """Checks that `value` fits `type_spec` and returns its runtime representation.

    Raises `fcore.TypeMismatchError` (with `expected`, `found` and `path`, e.g. `[1].x` or
    `[client 2]`) when it does not, and `TypeError` for placement and abstract types, which
    have no call-time values. `path` is prefixed to the paths in error messages.
    """
    if isinstance(type_spec, core.TensorType):
        return _to_tensor(value, type_spec, path)
    if isinstance(type_spec, core.StructType):
        return _to_struct(value, type_spec, path)
    if isinstance(type_spec, core.SequenceType):
        if _is_dataset(value):
            return _check_dataset(value, type_spec, path)
        if not isinstance(value, (list, tuple)) or is_namedtuple(value):
            raise _mismatch(type_spec, value, path, "a sequence is given as a list of elements "
                                                    "or a tf.data.Dataset")
        return [to_runtime(v, type_spec.element, f"{path}[element {i}]")
                for i, v in enumerate(value)]
    if isinstance(type_spec, core.FederatedType):
        if type_spec.all_equal:
            return to_runtime(value, type_spec.member, path)
        if type_spec.placement is not CLIENTS and (
                not isinstance(value, (list, tuple)) or is_namedtuple(value)):
            value = [value]  # the server's one member
        if not isinstance(value, (list, tuple)) or is_namedtuple(value):
            raise _mismatch(type_spec, value, path, f"a value placed at "
                            f"{type_spec.placement.name} that is not all-equal is given as a "
                            f"list with one member per client")
        return [to_runtime(v, type_spec.member, f"{path}[client {i}]")
                for i, v in enumerate(_promote_scalars(value, type_spec.member))]
    if isinstance(type_spec, core.FunctionType):
        signature = getattr(value, "type_signature", None)
        if not isinstance(signature, core.Type):
            raise _mismatch(type_spec, value, path, "expected a computation (an object with a "
                                                    "type_signature)")
        diff = first_difference(type_spec, signature)
        if diff is not None:
            where = f" at {diff[0]}" if diff[0] else ""
            raise _mismatch(type_spec, value, path, f"its type {signature} does not fit; "
                                                    f"first difference{where}: {diff[1]}")
        return _runtime_function(value)
    where = f" at {path}" if path else ""
    raise TypeError(f"Cannot convert {_describe(value)}{where} to a value of type {type_spec}: "
                    f"only tensor, struct, sequence, federated and function types have "
                    f"call-time values.")


def to_python(value, type_spec):
    """Converts a runtime value of type `type_spec` to the Python value returned to users.

    Tensors become NumPy scalars or arrays (string scalars `bytes`); structs the type's
    `python_container` (tuple, `OrderedDict` for dicts, a namedtuple/attrs/dataclass class) or
    `fcore.Struct`; sequences and non-all-equal federated values lists; functions are returned
    as they are.
    """
    if isinstance(type_spec, core.TensorType):
        value = _numpy(value)
        if isinstance(value, str):  # a str literal of the computation itself
            return value
        if type_spec.dtype == _STR:
            return _encode_strings(np.asarray(value, dtype=object))
        array = np.asarray(value)
        if array.dtype != type_spec.dtype:
            array = array.astype(type_spec.dtype)
        return array[()] if array.ndim == 0 else array
    if isinstance(type_spec, core.StructType):
        values = [to_python(v, t) for v, t in zip(_struct_values(value, type_spec), type_spec)]
        return pack(type_spec.python_container, zip(type_spec.names(), values))
    if isinstance(type_spec, core.SequenceType):
        elements = value.as_numpy_iterator() if _is_dataset(value) else value
        return [to_python(v, type_spec.element) for v in elements]
    if isinstance(type_spec, core.FederatedType):
        if type_spec.all_equal:
            return to_python(value, type_spec.member)
        return [to_python(v, type_spec.member) for v in value]
    return value


def count_clients(value, type_spec):
    """The number of clients fixed by the CLIENTS-placed, not all-equal parts of the runtime
    value `value` (as returned by `to_runtime`), or `None` if there are none.

    Raises `fcore.TypeMismatchError` when two parts have different numbers of members.
    """
    found = []
    _collect_clients(value, type_spec, "", found)
    for count, path in found[1:]:
        if count != found[0][0]:
            first = found[0][1] or "the whole value"
            raise TypeMismatchError(
                f"client-placed arguments have different numbers of clients: {found[0][0]} at "
                f"{first} and {count} at {path}", expected=found[0][0], found=count, path=path)
    return found[0][0] if found else None


def _collect_clients(value, type_spec, path, found):
    if isinstance(type_spec, core.FederatedType):
        if type_spec.placement is CLIENTS and not type_spec.all_equal:
            found.append((len(value), path))
    elif isinstance(type_spec, core.StructType):
        for index, ((name, element), v) in enumerate(zip(type_spec.items(), value)):
            _collect_clients(v, element, _child(path, name, index), found)


class ComputationArgument:
    """A computation given as an argument (for a function-typed parameter). The executor
    that receives it runs it as part of the call (`Interpreter.bind_functions`), in the same
    context: the same executor, number of clients and progress."""

    __slots__ = ("computation",)

    def __init__(self, computation):
        self.computation = computation

    @property
    def type_signature(self):
        return self.computation.type_signature


def _runtime_function(computation):
    return ComputationArgument(computation) if hasattr(computation, "ir") else computation


# Tensors.

def _to_tensor(value, type_spec, path):
    if type(value) is np.ndarray and value.ndim and value.dtype == type_spec.dtype and \
            value.dtype.kind != "O" and _shape_fits(value.shape, type_spec):
        return value  # already what it becomes (the common case for client data): no checks
    original, value = value, _numpy(value)
    dst = type_spec.dtype
    name = dtypes.dtype_name(dst)

    def fail(reason):
        return _mismatch(type_spec, original, path, reason)

    if isinstance(value, (list, tuple, np.ndarray, np.generic)):
        try:
            array = np.asarray(value)
        except (ValueError, TypeError, OverflowError):
            raise fail("it is not a rectangular array (nested lists of different lengths?)") \
                from None
        if dst == _STR:
            if not (array.size == 0 or array.dtype.kind in "US" or array.dtype.kind == "O" and
                    all(isinstance(x, (str, bytes)) for x in array.flat)):
                raise fail(f"str tensors take str or bytes elements, not dtype {array.dtype}")
            array = array.astype(object)
        elif not (array.size == 0 and isinstance(value, (list, tuple))):  # [] fits any dtype
            from_list = isinstance(value, (list, tuple)) and array.dtype.kind in "iu"
            if not (_compatible(array.dtype, dst) or from_list and dst.kind in "fc"):
                raise fail(f"dtype {array.dtype} cannot be converted to {name} without "
                           f"changing its kind")
            if dst.kind in "iu" and array.size:
                _check_range(int(array.min()), int(array.max()), dst, fail)
    elif isinstance(value, (str, bytes)):
        if dst != _STR:
            raise fail(f"strings are only accepted for str tensors, not {name}")
        array = np.asarray(value, dtype=object)
    elif isinstance(value, (bool, int, float, complex)):  # Python scalars: exact kinds only
        kinds = "b" if isinstance(value, bool) else "iu" if isinstance(value, int) \
            else "fc" if isinstance(value, float) else "c"
        if dst.kind not in kinds:
            hint = f"; write {float(value)!r} or np.{name}({value})" \
                if kinds == "iu" and dst.kind == "f" else ""
            raise fail(f"a Python {type(value).__name__} is not accepted for {name} tensors"
                       f"{hint}")
        if dst.kind in "iu":
            _check_range(value, value, dst, fail)
        array = np.asarray(value)
    else:
        raise fail("expected a tensor (a Python number, a NumPy value, a list or a tf.Tensor)")
    _check_shape(array.shape, type_spec, fail)
    if dst == _STR:
        return _encode_strings(array)
    source = array
    with np.errstate(over="ignore", invalid="ignore"):
        array = array.astype(dst, copy=False)  # no copy when the dtype already fits
    if dst.kind in "fc" and array is not source and source.dtype.kind in "iufc":
        overflow = np.isfinite(source) & ~np.isfinite(array)
        if np.any(overflow):
            bad = source[overflow].flat[0] if source.ndim else source[()]
            raise fail(f"{bad!r} does not fit {name} (it would become "
                       f"{array[overflow].flat[0] if array.ndim else array[()]})")
    return array[()] if array.ndim == 0 else array


def _promote_scalars(members, member_type):
    """A client list of Python numbers reads as one array, as NumPy would read it: with any
    float among them, the ints are floats too (`[1, 2, 6.]`); all ints stay ints."""
    if isinstance(member_type, core.TensorType) and member_type.dtype.kind in "fc" and \
            any(type(m) is float for m in members) and \
            all(type(m) in (int, float) for m in members):
        return [float(m) for m in members]
    return members


def _encode_strings(array):
    out = np.empty(array.shape, dtype=object)
    for index, x in np.ndenumerate(array):
        out[index] = x.encode("utf-8") if isinstance(x, str) else bytes(x)
    return out[()] if out.ndim == 0 else out


def _compatible(src, dst):
    """May an array of dtype `src` be converted to `dst`? Integers are range-checked apart."""
    if src.kind in "iu" and dst.kind in "iu":
        return True
    if src.kind == "b" or dst.kind == "b":
        return src.kind == dst.kind
    return src.kind in "fc" and dst.kind in "fc" and np.can_cast(src, dst, casting="same_kind")


def _check_range(low, high, dst, fail):
    info = np.iinfo(dst)
    if low < info.min or high > info.max:
        bad = low if low < info.min else high
        raise fail(f"{bad} is out of the range of {dtypes.dtype_name(dst)} "
                   f"[{info.min}, {info.max}]")


def _shape_fits(shape, type_spec):
    expected = type_spec.shape
    return expected is None or len(shape) == len(expected) and all(
        e is None or e == s for e, s in zip(expected, shape))


def _check_shape(shape, type_spec, fail):
    if not _shape_fits(shape, type_spec):
        expected = type_spec.shape
        fits = f"the scalar type {type_spec}" if not expected else str(type_spec)
        raise fail(f"shape {shape} does not fit {fits}")


# Structs.

def _to_struct(value, type_spec, path):
    fields = _fields(value)
    if fields is None:
        raise _mismatch(type_spec, value, path, f"expected a struct with {len(type_spec)} "
                        f"elements (a list, tuple, dict, namedtuple, dataclass or fcore.Struct)")
    pairs, by_name = fields
    names = type_spec.names()
    if by_name:
        if None in names:
            raise _mismatch(type_spec, value, path, f"element [{names.index(None)}] of the "
                            f"type has no name, so give the elements by position (a list or "
                            f"tuple), not by name")
        given = dict(pairs)
        missing = [n for n in names if n not in given]
        extra = [k for k, _ in pairs if k not in names]
        if missing or extra:
            problems = ([f"missing {_keys(missing)}"] if missing else []) + \
                ([f"unexpected {_keys(extra)}"] if extra else [])
            raise _mismatch(type_spec, value, path, f"{' and '.join(problems)} (expected "
                            f"{_keys(names)})")
        values = [given[n] for n in names]
    else:
        if len(pairs) != len(names):
            raise _mismatch(type_spec, value, path, f"expected {len(names)} elements, found "
                                                    f"{len(pairs)}")
        for index, ((found, _), expected) in enumerate(zip(pairs, names)):
            if found is not None and expected is not None and found != expected:
                raise _mismatch(type_spec, value, path, f"element [{index}] is named "
                                f"{found!r}, expected {expected!r}")
        values = [v for _, v in pairs]
    return Struct((name, to_runtime(v, element, _child(path, name, index)))
                  for index, ((name, element), v) in enumerate(zip(type_spec.items(), values)))


def _fields(value):
    """`(pairs of (name or None, value), by_name)` for a struct-like value, else `None`."""
    items = python_items(value)
    if items is None:
        return None
    pairs = list(items[0])
    return pairs, bool(pairs) and all(name is not None for name, _ in pairs)


def _struct_values(value, type_spec):
    if _fields(value) is None:
        raise TypeError(f"Expected a struct value of type {type_spec}, found {_describe(value)}.")
    pairs, by_name = _fields(value)
    if by_name and set(type_spec.names()) == {name for name, _ in pairs}:
        given = dict(pairs)
        return [given[name] for name in type_spec.names()]
    return [v for _, v in pairs]


# Sequences given as datasets.

def _check_dataset(dataset, type_spec, path):
    found = to_type(dataset.element_spec)
    diff = first_difference(type_spec.element, found)
    if diff is not None and _same_kinds(type_spec.element, found):
        return _cast_dataset(dataset, type_spec, path)
    if diff is not None:
        where = f" at {diff[0]}" if diff[0] else ""
        raise _mismatch(type_spec, dataset, path, f"its elements have type {found}; first "
                        f"difference{where}: {diff[1]}")
    return dataset


def _same_kinds(expected, found):
    """Same structure and shapes, dtypes differing only in width (int64 for int32, float64
    for float32): integers with integers, floats with floats, complex with complex."""
    if isinstance(expected, core.StructType) and isinstance(found, core.StructType):
        return len(expected) == len(found) and all(
            (a is None or b is None or a == b) and _same_kinds(x, y)
            for (a, x), (b, y) in zip(expected.items(), found.items()))
    if isinstance(expected, core.TensorType) and isinstance(found, core.TensorType):
        kinds = ("iu", "f", "c")
        return any(expected.dtype.kind in k and found.dtype.kind in k for k in kinds) and \
            core.TensorType(found.dtype, expected.shape).is_assignable_from(found)
    return False


def _cast_dataset(dataset, type_spec, path):
    """`dataset` with its elements cast to the dtypes of the sequence type `type_spec` (e.g.
    the int64 of `tf.data.Dataset.range` for an `int32*` parameter). Each element is checked
    as it is read: a value the narrower dtype cannot hold (an int out of range, a float that
    overflows) fails with InvalidArgumentError instead of wrapping around."""
    tf = sys.modules["tensorflow"]

    def cast(type_, value, where):
        if isinstance(type_, core.StructType):
            if isinstance(value, collections.abc.Mapping):
                return collections.OrderedDict(
                    (name, cast(t, value[name], _child(where, name, i)))
                    for i, (name, t) in enumerate(type_.items()))
            return tuple(cast(t, v, _child(where, None, i))
                         for i, (t, v) in enumerate(zip(type_, value)))
        target = tf.as_dtype(type_.dtype)
        if value.dtype == target:
            return value
        converted = tf.cast(value, target)
        if type_.dtype.kind in "iu":  # no wrap-around: same value back, same sign
            fits = tf.logical_and(tf.equal(tf.cast(converted, value.dtype), value),
                                  tf.equal(value < 0, converted < 0))
        else:  # no overflow to inf
            fits = tf.equal(tf.math.is_finite(tf.math.real(value)),
                            tf.math.is_finite(tf.math.real(converted)))
        message = (f"{DATASET_CHECK}Expected a value of type {type_spec}"
                   f"{' at ' + path if path else ''}: an "
                   f"element{' ' + where if where else ''} of the dataset ({value.dtype.name}) "
                   f"is out of the range of {dtypes.dtype_name(type_.dtype)}")
        check = tf.debugging.Assert(tf.reduce_all(fits), [message, value])
        with tf.control_dependencies([check]):
            return tf.identity(converted)

    def convert(*element):
        return cast(type_spec.element, element[0] if len(element) == 1 else element, "")
    return dataset.map(convert)


# Helpers.

def _mismatch(type_spec, value, path, reason):
    where = f" at {path}" if path else ""
    found = _describe(value)
    return TypeMismatchError(f"Expected a value of type {type_spec}{where}, found {found}: "
                             f"{reason}.", expected=type_spec, found=found, path=path)


def _describe(value):
    text = " ".join(repr(value).split())
    text = text if len(text) <= 80 else text[:77] + "..."
    if _is_dataset(value):
        return f"a tf.data.Dataset ({type(value).__name__})"
    if _is_tf_tensor(value):
        return f"{text} (tf.Tensor, dtype {value.dtype.name}, shape {tuple(value.shape)})"
    if isinstance(value, np.ndarray):
        return f"{text} (numpy.ndarray, dtype {value.dtype}, shape {value.shape})"
    if isinstance(value, np.generic):
        return f"{text} (NumPy {value.dtype} scalar)"
    return f"{text} (Python {type(value).__name__})"


def _numpy(value):
    return value.numpy() if _is_tf_tensor(value) else value


def _is_tf_tensor(value):
    return type(value).__module__.startswith("tensorflow") and hasattr(value, "numpy") \
        and hasattr(value, "dtype")


def _is_dataset(value):
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(value, tf.data.Dataset)


def _child(path, name, index):
    return f"{path}.{name}" if name is not None else f"{path}[{index}]"


def _keys(names):
    return ("key " if len(names) == 1 else "keys ") + ", ".join(repr(n) for n in names)
