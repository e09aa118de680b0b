"""Call-time values: `to_runtime` (check and convert), `to_python` and `count_clients`."""

import collections
import dataclasses

import numpy as np
import pytest

from fcore import (CLIENTS, SERVER, FederatedType, FunctionType, SequenceType, Struct, StructType,
                   TensorType, TypeMismatchError, parse_type)
from fcore.execution.values import count_clients, to_python, to_runtime

Point = collections.namedtuple("Point", ["x", "y"])


@dataclasses.dataclass
class Pair:
    a: int
    b: float


def _type(spec):
    return parse_type(spec) if isinstance(spec, str) else spec


def convert(value, spec, path=""):
    return to_runtime(value, _type(spec), path)


def mismatch(value, spec, match=None, path=""):
    with pytest.raises(TypeMismatchError, match=match) as info:
        to_runtime(value, _type(spec), path)
    return info.value


def same(result, expected):
    """Same type, dtype, shape and values."""
    assert type(result) is type(expected), (result, expected)
    if isinstance(expected, (np.ndarray, np.generic)):
        assert result.dtype == expected.dtype and result.shape == expected.shape
        np.testing.assert_array_equal(result, expected)
    else:
        assert result == expected


@pytest.fixture(scope="module")
def tf():
    return pytest.importorskip("tensorflow")


# Tensors: accepted values.

@pytest.mark.parametrize("value, spec, expected", [
    (5, "int32", np.int32(5)),
    (-7, "int8", np.int8(-7)),
    (255, "uint8", np.uint8(255)),
    (2**40, "int64", np.int64(2**40)),
    (np.int64(3), "int32", np.int32(3)),
    (np.uint8(3), "int64", np.int64(3)),
    (True, "bool", np.bool_(True)),
    (np.bool_(False), "bool", np.bool_(False)),
    (2.5, "float32", np.float32(2.5)),
    (2.5, "float64", np.float64(2.5)),
    (1.5, "complex64", np.complex64(1.5)),
    (1 + 2j, "complex128", np.complex128(1 + 2j)),
    (np.float64(0.5), "float32", np.float32(0.5)),
    (np.float16(0.5), "float32", np.float32(0.5)),
    (np.array([1, 2, 3.5]), "float32[3]", np.array([1, 2, 3.5], dtype=np.float32)),
    ([1.0, 2.0, 3.0], "float32[3]", np.array([1, 2, 3], dtype=np.float32)),
    ([1, 2, 3.5], "float32[?]", np.array([1, 2, 3.5], dtype=np.float32)),
    ([[1, 2], [3, 4]], "int32[2,2]", np.array([[1, 2], [3, 4]], dtype=np.int32)),
    ([[1, 2], [3, 4]], "int32[?,2]", np.array([[1, 2], [3, 4]], dtype=np.int32)),
    ([[1, 2], [3, 4]], "int32[...]", np.array([[1, 2], [3, 4]], dtype=np.int32)),
    (7, "int32[...]", np.int32(7)),
    (np.arange(3, dtype=np.int64), "int32[3]", np.array([0, 1, 2], dtype=np.int32)),
    (np.array([1, 2], dtype=np.int8), "uint16[2]", np.array([1, 2], dtype=np.uint16)),
    (np.array([True, False]), "bool[2]", np.array([True, False])),
    ([], "int32[?]", np.zeros([0], np.int32)),
    ([], "float32[0]", np.zeros([0], np.float32)),
    (np.array(4.0), "float32", np.float32(4.0)),
])
def test_tensor_accepted(value, spec, expected):
    same(convert(value, spec), expected)


def test_scalar_results_are_numpy_scalars_and_arrays_have_the_exact_dtype():
    assert isinstance(convert(5, "int32"), np.int32)
    result = convert([1.0, 2.0], "float32[2]")
    assert isinstance(result, np.ndarray) and result.dtype == np.float32


def test_tf_tensors_are_converted_with_numpy(tf):
    same(convert(tf.constant([1.0, 2.0]), "float32[2]"), np.array([1, 2], np.float32))
    same(convert(tf.constant(3, tf.int64), "int32"), np.int32(3))
    same(convert(tf.constant("ab"), "str"), b"ab")
    same(convert(tf.Variable(2.0), "float32"), np.float32(2.0))
    error = mismatch(tf.constant([1.0, 2.0]), "int32[2]", "tf.Tensor, dtype float32")
    assert "shape (2,)" in str(error)


# Tensors: rejected values (the spec's call-time rows, with better messages).

@pytest.mark.parametrize("value, spec, match", [
    (1.5, "int32", r"found 1.5 \(Python float\): a Python float is not accepted for int32"),
    (np.float32(1.0), "int32", r"NumPy float32 scalar.*float32 cannot be converted to int32"),
    ("a", "int32", r"found 'a' \(Python str\): strings are only accepted for str tensors"),
    (b"a", "int32", r"strings are only accepted for str tensors"),
    (np.str_("a"), "int32", r"cannot be converted to int32"),
    (2**40, "int32", r"1099511627776 is out of the range of int32 \[-2147483648, 2147483647\]"),
    (2**70, "int64", r"out of the range of int64"),
    (-1, "uint8", r"-1 is out of the range of uint8 \[0, 255\]"),
    (np.array([300]), "uint8[1]", r"300 is out of the range of uint8"),
    (np.array([2**40]), "int32[1]", r"out of the range of int32"),
    (np.int64(2**40), "int32", r"out of the range of int32"),
    (True, "int32", r"a Python bool is not accepted for int32"),
    (np.array([True]), "int32[1]", r"dtype bool cannot be converted to int32"),
    (1, "bool", r"a Python int is not accepted for bool"),
    (np.array([1]), "bool[1]", r"dtype int64 cannot be converted to bool"),
    (2, "float32", r"a Python int is not accepted for float32 tensors; write 2.0 or "
                   r"np.float32\(2\)"),
    (1, "complex64", r"a Python int is not accepted for complex64"),
    (1j, "float32", r"a Python complex is not accepted for float32"),
    (np.array([1.0], np.float32), "int32[1]", r"dtype float32 cannot be converted to int32"),
    (np.array([1j]), "float64[1]", r"dtype complex128 cannot be converted to float64"),
    ([2.5], "float32", r"shape \(1,\) does not fit the scalar type float32"),
    (np.array([1.0, 2.0]), "float32[3]", r"shape \(2,\) does not fit float32\[3\]"),
    ([[1.0, 2.0]], "float32[2]", r"shape \(1, 2\) does not fit float32\[2\]"),
    (np.zeros([2, 3]), "float64[?,4]", r"shape \(2, 3\) does not fit float64\[\?,4\]"),
    (1.0, "float32[?]", r"shape \(\) does not fit float32\[\?\]"),
    ([[1, 2], [3]], "int32[?,?]", r"not a rectangular array"),
    ([1, None], "int32[2]", r"dtype object cannot be converted"),
    (None, "int32", r"found None \(Python NoneType\): expected a tensor"),
    ({"a": 1}, "int32", r"expected a tensor"),
    (1, "str", r"a Python int is not accepted for str tensors"),
    ([1, 2], "str[2]", r"str tensors take str or bytes elements, not dtype int64"),
    (["a", "b"], "str[3]", r"shape \(2,\) does not fit str\[3\]"),
])
def test_tensor_rejected(value, spec, match):
    error = mismatch(value, spec, match)
    assert error.expected == parse_type(spec)
    assert error.path == ""
    assert str(error).startswith(f"Expected a value of type {parse_type(spec)}, found ")


def test_tensor_error_names_the_value_its_python_type_dtype_and_shape():
    error = mismatch(np.array([1.0, 2.0]), "float32[3]")
    assert str(error) == ("Expected a value of type float32[3], found array([1., 2.]) "
                          "(numpy.ndarray, dtype float64, shape (2,)): shape (2,) does not fit "
                          "float32[3].")
    assert error.found == "array([1., 2.]) (numpy.ndarray, dtype float64, shape (2,))"
    assert isinstance(error, TypeError)


def test_long_values_are_shortened_in_messages():
    error = mismatch(list(range(1000)), "str[?]")
    assert "..." in str(error) and len(str(error)) < 300


# Strings: bytes scalars and object arrays of bytes.

@pytest.mark.parametrize("value", ["hello", b"hello", np.str_("hello"), np.bytes_(b"hello")])
def test_string_scalars_become_bytes(value):
    same(convert(value, "str"), b"hello")


@pytest.mark.parametrize("value", [["a", b"b"], np.array(["a", "b"]), np.array([b"a", b"b"]),
                                   ("a", "b"), np.array(["a", b"b"], dtype=object)])
def test_string_arrays_become_object_arrays_of_bytes(value):
    result = convert(value, "str[2]")
    assert result.dtype == object and result.shape == (2,)
    assert list(result) == [b"a", b"b"] and all(type(x) is bytes for x in result)


def test_strings_are_encoded_as_utf8():
    assert convert("é", "str") == "é".encode("utf-8")
    assert convert([], "str[?]").shape == (0,)


# Structs.

def test_dict_maps_by_name_whatever_its_order():
    result = convert({"b": 2.5, "a": 1}, "<a=int32,b=float32>")
    assert result == Struct([("a", np.int32(1)), ("b", np.float32(2.5))])
    assert result.names() == ("a", "b")
    same(result.a, np.int32(1))
    same(result.b, np.float32(2.5))


@pytest.mark.parametrize("value", [
    {"a": 1, "b": 2.5},
    collections.OrderedDict(a=1, b=2.5),
    collections.OrderedDict(b=2.5, a=1),
    (1, 2.5),
    [1, 2.5],
    Pair(1, 2.5),
    Struct([("a", 1), ("b", 2.5)]),
    Struct([("b", 2.5), ("a", 1)]),
    Struct([(None, 1), (None, 2.5)]),
    Struct([("a", 1), (None, 2.5)]),
])
def test_struct_accepted(value):
    result = convert(value, "<a=int32,b=float32>")
    assert isinstance(result, Struct) and result.names() == ("a", "b")
    same(result[0], np.int32(1))
    same(result[1], np.float32(2.5))


def test_namedtuple_maps_by_field_name():
    result = convert(Point(y=2.0, x=1.0), "<y=float32,x=float32>")
    assert result == Struct([("y", np.float32(2.0)), ("x", np.float32(1.0))])


def test_unnamed_and_empty_structs():
    assert convert((1, 2.5), "<int32,float32>") == Struct([(None, 1), (None, 2.5)])
    assert convert([1, [2, 3]], "<int32,<int32,int32>>")[1] == Struct([(None, 2), (None, 3)])
    for empty in ([], (), {}, Struct([])):
        assert convert(empty, "<>") == Struct([])


@pytest.mark.parametrize("value, match", [
    ({"a": 1, "c": 2.5}, r"missing key 'b' and unexpected key 'c' \(expected keys 'a', 'b'\)"),
    (collections.OrderedDict(a=1), r"missing key 'b' \(expected keys 'a', 'b'\)"),
    ({"a": 1, "b": 2.5, "z": 0}, r"unexpected key 'z'"),
    (collections.OrderedDict(x=1, y=2.0), r"missing keys 'a', 'b' and unexpected keys 'x', 'y'"),
    (Point(1, 2.0), r"missing keys 'a', 'b'"),
    (Struct([("a", 1), ("c", 2.5)]), r"unexpected key 'c'"),
    (Struct([("b", 1), (None, 2.5)]), r"element \[0\] is named 'b', expected 'a'"),
    ((1,), r"expected 2 elements, found 1"),
    ([1, 2.5, 3], r"expected 2 elements, found 3"),
    (1, r"found 1 \(Python int\): expected a struct with 2 elements"),
    (np.array([1, 2]), r"expected a struct with 2 elements"),
])
def test_struct_rejected(value, match):
    error = mismatch(value, "<a=int32,b=float32>", match)
    assert error.expected == parse_type("<a=int32,b=float32>")
    assert error.path == ""


def test_dict_for_an_unnamed_struct_asks_for_positions():
    mismatch({"a": 1}, "<int32>", r"element \[0\] of the type has no name, so give the elements "
                                  r"by position")
    mismatch({"a": 1, "b": 2}, "<a=int32,int32>", r"element \[1\] of the type has no name")


@pytest.mark.parametrize("value, spec, path", [
    ([1, {"x": 1.5}], "<int32,<x=int32>>", "[1].x"),
    ({"a": 1, "b": {"c": [1.0, "x"]}}, "<a=int32,b=<c=float32[2]>>", ".b.c"),
    ({"a": 1, "b": [1, 2.5]}, "<a=int32,b=<int32,int32>>", ".b[1]"),
    ({"a": 1, "b": {"d": 1}}, "<a=int32,b=<c=int32>>", ".b"),
])
def test_nested_errors_name_the_path(value, spec, path):
    error = mismatch(value, spec)
    assert error.path == path
    assert f" at {path}, found " in str(error)


def test_nested_error_expects_the_element_type():
    error = mismatch([1, {"x": 1.5}], "<int32,<x=int32>>")
    assert str(error) == ("Expected a value of type int32 at [1].x, found 1.5 (Python float): a "
                          "Python float is not accepted for int32 tensors.")
    assert error.expected == TensorType(np.int32)
    assert error.found == "1.5 (Python float)"


def test_path_argument_prefixes_paths():
    assert mismatch(1.5, "int32", path="[0]").path == "[0]"
    assert mismatch([1, 1.5], "<int32,int32>", path=".arg").path == ".arg[1]"


# Sequences.

def test_sequence_of_elements_becomes_a_list():
    result = convert([1, 2, 3], "int32*")
    assert isinstance(result, list)
    for got, want in zip(result, [1, 2, 3]):
        same(got, np.int32(want))
    assert convert((), "int32*") == []
    result = convert([{"x": [1.0, 2.0], "y": 1}], "<x=float32[?],y=int32>*")
    assert result[0].names() == ("x", "y") and result[0].x.dtype == np.float32


def test_sequence_rejections():
    mismatch(5, "int32*", r"a sequence is given as a list of elements or a tf.data.Dataset")
    error = mismatch([1, 2.5], "int32*", r"a Python float is not accepted for int32")
    assert error.path == "[element 1]"


def test_dataset_is_kept_when_its_elements_fit(tf):
    ds = tf.data.Dataset.from_tensor_slices(np.arange(4, dtype=np.int32))
    assert convert(ds, "int32*") is ds
    ds = tf.data.Dataset.from_tensor_slices({"x": np.zeros([3, 2], np.float32)})
    assert convert(ds, "<x=float32[?]>*") is ds


def test_dataset_that_does_not_fit_is_rejected(tf):
    error = mismatch(tf.data.Dataset.from_tensor_slices(np.arange(3.0)), "int32*",
                     r"found a tf.data.Dataset .*: its elements have type float64; first "
                     r"difference: dtype float64 is not int32")
    assert error.expected == parse_type("int32*")
    ds = tf.data.Dataset.from_tensor_slices({"x": np.zeros([3, 2], np.float32)})
    mismatch(ds, "<x=float32[3]>*", r"first difference at \.x: shape \[2\] does not fit \[3\]")
    mismatch(ds, "<y=float32[2]>*", r"expected name 'y'")
    error = mismatch([tf.data.Dataset.from_tensor_slices(np.arange(2.0))], "{int32*}@CLIENTS")
    assert error.path == "[client 0]"


def test_dataset_of_a_wider_integer_dtype_is_cast(tf):
    # Dataset.range gives int64; an int32* parameter takes it, cast element by element.
    ds = convert(tf.data.Dataset.range(5), "int32*")
    assert ds.element_spec.dtype == tf.int32
    assert [int(x) for x in ds] == [0, 1, 2, 3, 4]


def test_to_python_of_a_tuple_dataset(tf):
    ds = tf.data.Dataset.from_tensor_slices((np.arange(3.0, dtype=np.float32),
                                             np.arange(3, dtype=np.int32)))
    spec = parse_type("<float32,int32>*")
    assert convert(ds, spec) is ds
    result = to_python(ds, spec)
    assert result[2] == Struct([(None, np.float32(2.0)), (None, np.int32(2))])
    same(result[2][1], np.int32(2))


# Federated values.

def test_client_values_are_lists_with_one_member_per_client():
    result = convert([1.0, 2.0, 6.0], "{float32}@CLIENTS")
    assert isinstance(result, list) and len(result) == 3
    same(result[2], np.float32(6.0))
    assert convert((0.5,), "{float32}@CLIENTS") == [np.float32(0.5)]
    assert convert([], "{int32}@CLIENTS") == []
    nested = convert([[1, 2], [3, 4, 5]], "{int32*}@CLIENTS")
    assert [len(x) for x in nested] == [2, 3]
    rows = convert([[1.0, 2.0], [3.0, 6.0]], "{float32[2]}@CLIENTS")
    same(rows[1], np.array([3, 6], np.float32))
    assert mismatch([1, 2, "x"], "{float32}@CLIENTS").path == "[client 0]"


def test_client_values_rejected():
    error = mismatch([1, 2], "{float32}@CLIENTS",
                     r"a Python int is not accepted for float32 tensors; write 1.0")
    assert error.path == "[client 0]"
    assert mismatch(["a"], "{float32}@CLIENTS").path == "[client 0]"
    error = mismatch(1.0, "{float32}@CLIENTS", r"found 1.0 \(Python float\): a value placed at "
                     r"CLIENTS that is not all-equal is given as a list with one member per "
                     r"client")
    assert error.expected == parse_type("{float32}@CLIENTS")
    mismatch(np.array([1.0, 2.0]), "{float32}@CLIENTS", r"a list with one member per client")
    error = mismatch([{"a": 1, "b": 0.5}, {"a": 2, "b": "x"}], "{<a=int32,b=float32>}@CLIENTS")
    assert error.path == "[client 1].b"
    assert "at [client 1].b" in str(error)


def test_all_equal_values_are_single_members():
    same(convert(2.5, "float32@SERVER"), np.float32(2.5))
    same(convert(3.0, "float32@CLIENTS"), np.float32(3.0))
    assert convert({"a": 1, "b": 0.5}, "<a=int32,b=float32>@SERVER").names() == ("a", "b")
    mismatch(2, "float32@SERVER", r"a Python int is not accepted for float32")
    mismatch([2.5], "float32@SERVER", r"shape \(1,\) does not fit the scalar type float32")


def test_server_values_that_are_not_all_equal_are_lists():
    spec = FederatedType(np.float32, SERVER, all_equal=False)
    assert convert([1.0, 2.0], spec) == [np.float32(1.0), np.float32(2.0)]
    assert convert(1.0, spec) == [np.float32(1.0)]  # a bare value is the server's one member


def test_struct_of_federated_values():
    spec = "<x={float32}@CLIENTS,w={int32}@CLIENTS>"
    result = convert(([1.0, 2.0], [1, 3]), spec)
    assert result.names() == ("x", "w") and result.w == [np.int32(1), np.int32(3)]
    assert mismatch(([1.0, 2.0], [1, 3.5]), spec).path == ".w[client 1]"


# Functions, placements and type variables.

class _Computation:
    def __init__(self, type_signature):
        self.type_signature = type_signature


def test_function_values():
    inc = _Computation(parse_type("(int32 -> int32)"))
    assert convert(inc, "(int32 -> int32)") is inc
    wider = _Computation(parse_type("(float32[?] -> float32[3])"))
    assert convert(wider, "(float32[3] -> float32[?])") is wider
    error = mismatch(_Computation(parse_type("(float32 -> int32)")), "(int32 -> int32)",
                     r"its type \(float32 -> int32\) does not fit; first difference at "
                     r"\(parameter\): dtype int32 is not float32")
    assert error.expected == parse_type("(int32 -> int32)")
    mismatch(lambda x: x, "(int32 -> int32)", r"expected a computation \(an object with a "
                                             r"type_signature\)")
    mismatch(_Computation("int32"), "(int32 -> int32)", r"expected a computation")
    result = convert((inc, 41), "<f=(int32 -> int32),x=int32>")
    assert result.f is inc and result.x == 41


@pytest.mark.parametrize("spec", ["placement", "T"])
def test_placement_and_abstract_types_raise_type_error(spec):
    with pytest.raises(TypeError, match=r"Cannot convert .* to a value of type") as info:
        convert(SERVER, spec)
    assert not isinstance(info.value, TypeMismatchError)


# to_python.

@pytest.mark.parametrize("value, spec, expected", [
    (np.int32(5), "int32", np.int32(5)),
    (5, "int32", np.int32(5)),
    (np.float64(0.5), "float32", np.float32(0.5)),
    (np.array(3.0, np.float32), "float32", np.float32(3.0)),
    ([2.0, 4.0], "float32[2]", np.array([2, 4], np.float32)),
    (b"hello", "str", b"hello"),
    ("hello", "str", "hello"),  # a str literal of the computation stays a str
    (np.bytes_(b"hi"), "str", b"hi"),
])
def test_to_python_tensors(value, spec, expected):
    same(to_python(value, parse_type(spec)), expected)


def test_to_python_string_arrays_and_tf_tensors(tf):
    result = to_python(np.array(["a", "b"]), parse_type("str[2]"))
    assert result.dtype == object and list(result) == [b"a", b"b"]
    same(to_python(tf.constant(7), parse_type("int32")), np.int32(7))
    same(to_python(tf.constant("x"), parse_type("str")), b"x")


def test_to_python_struct_containers():
    runtime = Struct([("a", np.int32(1)), ("b", np.float32(2.5))])
    result = to_python(runtime, StructType([("a", np.int32), ("b", np.float32)], tuple))
    assert result == (1, 2.5) and type(result) is tuple
    for container in (dict, collections.OrderedDict):
        result = to_python(runtime, StructType({"a": np.int32, "b": np.float32}, container))
        assert type(result) is collections.OrderedDict
        assert result == collections.OrderedDict(a=1, b=2.5)
    result = to_python(runtime, StructType(Pair(np.int32, np.float32)))
    assert result == Pair(np.int32(1), np.float32(2.5))
    point = to_python(Struct([("x", 1.0), ("y", 2.0)]), StructType(Point(np.float32, np.float32)))
    assert type(point) is Point and point == Point(1.0, 2.0)
    same(point.x, np.float32(1.0))
    plain = to_python(runtime, parse_type("<a=int32,b=float32>"))
    assert isinstance(plain, Struct) and plain == runtime
    unnamed = to_python(Struct([(None, 1), (None, 2.5)]), parse_type("<int32,float32>"))
    assert unnamed == Struct([(None, np.int32(1)), (None, np.float32(2.5))])


def test_to_python_converts_nested_structs_recursively():
    inner = StructType({"total": np.int32, "mean": np.float32})
    spec = StructType([("x", inner), ("y", parse_type("<int32,int32>"))], tuple)
    runtime = Struct([("x", Struct([("total", 6), ("mean", 3.0)])), ("y", Struct([(None, 1),
                                                                                   (None, 2)]))])
    result = to_python(runtime, spec)
    assert type(result) is tuple
    assert result[0] == collections.OrderedDict([("total", 6), ("mean", 3.0)])
    same(result[0]["mean"], np.float32(3.0))
    assert isinstance(result[1], Struct)


def test_to_python_sequences_federated_and_functions(tf):
    assert to_python([1, 2], parse_type("int32*")) == [np.int32(1), np.int32(2)]
    ds = tf.data.Dataset.from_tensor_slices({"x": np.arange(2, dtype=np.int32)})
    result = to_python(ds, SequenceType(StructType({"x": np.int32})))
    assert result == [collections.OrderedDict(x=0), collections.OrderedDict(x=1)]
    same(result[1]["x"], np.int32(1))
    clients = to_python([1.0, 2.0], parse_type("{float32}@CLIENTS"))
    assert clients == [1.0, 2.0] and all(type(x) is np.float32 for x in clients)
    zipped = to_python([Struct([(None, 1), (None, 0.5)])],
                       FederatedType(StructType([np.int32, np.float32], tuple), CLIENTS))
    assert zipped == [(1, 0.5)] and type(zipped[0]) is tuple
    same(to_python(np.float32(3.0), parse_type("float32@SERVER")), np.float32(3.0))
    inc = _Computation(parse_type("(int32 -> int32)"))
    assert to_python(inc, FunctionType(np.int32, np.int32)) is inc


@pytest.mark.parametrize("value, spec", [
    ({"a": 1, "b": 2.5}, "<a=int32,b=float32>"),
    ([[1.0, 2.0], [3.0]], "{float32[?]}@CLIENTS"),
    ((1, [1, 2], ["x", "y"]), "<int32,int32*,str[2]>"),
])
def test_round_trip(value, spec):
    spec = parse_type(spec)
    first = to_python(to_runtime(value, spec), spec)
    second = to_python(to_runtime(first, spec), spec)
    assert repr(first) == repr(second)


# count_clients.

def test_count_clients():
    assert count_clients(convert(2.5, "float32@SERVER"), parse_type("float32@SERVER")) is None
    assert count_clients(np.int32(1), parse_type("int32")) is None
    assert count_clients([1, 2, 3], parse_type("{int32}@CLIENTS")) == 3
    assert count_clients([], parse_type("{int32}@CLIENTS")) == 0
    assert count_clients(np.float32(1.0), parse_type("float32@CLIENTS")) is None
    assert count_clients([1.0], FederatedType(np.float32, SERVER, all_equal=False)) is None
    spec = parse_type("<s=float32@SERVER,c={float32}@CLIENTS,d={int32}@CLIENTS>")
    assert count_clients(convert((10.0, [1.0, 2.0], [1, 2]), spec), spec) == 2
    spec = parse_type("<a=<b={int32}@CLIENTS>,c=<{int32}@CLIENTS>>")
    assert count_clients(convert({"a": {"b": [1]}, "c": [[2]]}, spec), spec) == 1


def test_count_clients_disagreement():
    spec = parse_type("<{float32}@CLIENTS,{float32}@CLIENTS>")
    with pytest.raises(TypeMismatchError) as info:
        count_clients(convert(([1.0, 2.0, 3.0], [1.0, 2.0]), spec), spec)
    assert str(info.value) == ("client-placed arguments have different numbers of clients: 3 at "
                               "[0] and 2 at [1]")
    assert (info.value.expected, info.value.found, info.value.path) == (3, 2, "[1]")
    spec = parse_type("<a=<b={int32}@CLIENTS>,c={int32}@CLIENTS>")
    with pytest.raises(TypeMismatchError, match=r"1 at \.a\.b and 2 at \.c"):
        count_clients(convert({"a": {"b": [1]}, "c": [1, 2]}, spec), spec)


def test_python_int_lists_fill_float_tensors():
    # A nested list reads as an array, as in TFF's `[[1, 2], [3, 6]]` for {float32[2]}@CLIENTS.
    same(convert([1, 2], "float32[2]"), np.array([1.0, 2.0], np.float32))
    same(convert([[1, 2], [3, 6]], "{float32[2]}@CLIENTS")[1], np.array([3.0, 6.0], np.float32))


def test_client_list_of_numbers_with_a_float_reads_as_floats():
    assert convert([1, 2, 6.0], "{float32}@CLIENTS") == [1.0, 2.0, 6.0]
    mismatch([1, 2], "{float32}@CLIENTS", r"a Python int is not accepted for float32")
