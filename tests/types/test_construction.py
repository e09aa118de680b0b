"""Building types: coercion from dtypes, TF specs and containers; impossible types rejected."""

import collections
import dataclasses

import numpy as np
import pytest

import fcore
from fcore import (CLIENTS, SERVER, FederatedType, FunctionType, SequenceType, StructType,
                   TensorType, to_type)


def test_types_are_interned():
    assert TensorType(np.int32) is TensorType("int32")
    assert StructType([("a", np.int32)]) is StructType([("a", "int32")])
    assert FederatedType(np.float32, CLIENTS) is FederatedType("float32", "CLIENTS")


def test_types_are_immutable():
    with pytest.raises(AttributeError):
        TensorType(np.int32).dtype = np.float32


@pytest.mark.parametrize("spec", ["int32", np.int32, np.dtype("int32")])
def test_dtype_spellings(spec):
    assert TensorType(spec) == TensorType(np.int32)


def test_shape_spellings():
    assert str(TensorType(np.float32, [None, 784])) == "float32[?,784]"
    assert str(TensorType(np.float32, 3)) == "float32[3]"
    assert str(TensorType(np.float32, ())) == "float32"
    assert TensorType(np.float32, None).rank is None


def test_string_tensors_print_as_str():
    assert str(TensorType(str)) == "str"
    assert str(TensorType(np.str_, [2])) == "str[2]"


def test_struct_from_dict_keeps_order_and_container():
    t = StructType(collections.OrderedDict(b=np.int32, a=np.float32))
    assert str(t) == "<b=int32,a=float32>"
    assert t.python_container is collections.OrderedDict
    assert t.b == TensorType(np.int32)
    assert t["a"] == TensorType(np.float32)
    assert t[0] == TensorType(np.int32)


def test_struct_container_does_not_affect_equality():
    assert StructType({"a": np.int32}) == StructType([("a", np.int32)])
    assert hash(StructType({"a": np.int32})) == hash(StructType([("a", np.int32)]))


def test_struct_from_namedtuple_and_dataclass():
    Point = collections.namedtuple("Point", "x y")
    t = StructType(Point(np.int32, np.float32))
    assert str(t) == "<x=int32,y=float32>"
    assert t.python_container is Point

    @dataclasses.dataclass
    class Pair:
        left: object
        right: object

    t = to_type(Pair(np.int32, (np.float32, [2])))
    assert str(t) == "<left=int32,right=float32[2]>"
    assert t.python_container is Pair


def test_to_type_of_nested_containers():
    assert str(to_type([np.int32, ("b", np.float32)])) == "<int32,b=float32>"
    assert str(to_type((np.int32, [10]))) == "int32[10]"
    assert str(to_type((np.int32, np.float32))) == "<int32,float32>"
    assert str(to_type({"x": (np.float32, [None, 784]), "y": (np.int32, [None])})) == \
        "<x=float32[?,784],y=int32[?]>"
    assert to_type(None) is None
    t = to_type(FederatedType(np.int32, CLIENTS))
    assert t is FederatedType(np.int32, CLIENTS)


def test_federated_type_defaults_all_equal_by_placement():
    assert FederatedType(np.int32, SERVER).all_equal is True
    assert FederatedType(np.int32, CLIENTS).all_equal is False


@pytest.mark.parametrize("build, error, message", [
    (lambda: FederatedType(FederatedType(np.int32, SERVER), CLIENTS), TypeError,
     "a federated member cannot be a FederatedType, found int32@SERVER"),
    (lambda: FederatedType(StructType([("a", FederatedType(np.int32, SERVER))]), CLIENTS),
     TypeError, "found int32@SERVER at .a of <a=int32@SERVER>"),
    (lambda: FederatedType(FunctionType(np.int32, np.int32), SERVER), TypeError,
     "a federated member cannot be a FunctionType"),
    (lambda: FederatedType(np.int32, "bogus"), ValueError,
     "Expected a placement (SERVER or CLIENTS), found 'bogus'"),
    (lambda: FederatedType(np.int32, TensorType(np.int32)), TypeError,
     "expected a placement (SERVER or CLIENTS) as the placement, found the type int32"),
    (lambda: TensorType("notadtype"), TypeError, "Unknown dtype 'notadtype'"),
    (lambda: TensorType(np.int32, [-1]), TypeError, "expected a dimension"),
    (lambda: StructType([("a", np.int32), ("a", np.float32)]), ValueError,
     "duplicate element name 'a'"),
    (lambda: StructType([("a b", np.int32)]), ValueError, "invalid name 'a b'"),
    (lambda: StructType([("a", "notadtype")]), TypeError, "StructType element a"),
    (lambda: SequenceType(FederatedType(np.int32, CLIENTS)), TypeError,
     "a sequence element cannot be a FederatedType"),
    (lambda: fcore.AbstractType("t"), ValueError, "upper-case"),
    (lambda: to_type(object()), TypeError, "Cannot convert"),
])
def test_impossible_types_are_rejected_naming_the_part(build, error, message):
    with pytest.raises(error) as info:
        build()
    assert message in str(info.value)


def test_tensorflow_specs_convert():
    tf = pytest.importorskip("tensorflow")
    assert str(to_type(tf.int32)) == "int32"
    assert str(to_type(tf.string)) == "str"
    assert str(to_type(tf.TensorSpec([None, 784], tf.float32))) == "float32[?,784]"
    assert str(to_type(tf.TensorSpec(None, tf.float32))) == "float32[...]"
    assert str(TensorType(tf.float32, tf.TensorShape([None, 3]))) == "float32[?,3]"
    dataset = tf.data.Dataset.from_tensor_slices(
        collections.OrderedDict(x=np.zeros((4, 784), np.float32), y=np.zeros(4, np.int32))
    ).batch(2)
    assert str(to_type(dataset.element_spec)) == "<x=float32[?,784],y=int32[?]>"
    assert str(to_type(tf.data.DatasetSpec(dataset.element_spec))) == \
        "<x=float32[?,784],y=int32[?]>*"
    assert str(to_type((tf.float32, [2]))) == "float32[2]"


def test_tensorflow_dtypes_without_a_numpy_dtype_are_refused_with_a_type_error():
    import tensorflow as tf
    for dtype in (tf.resource, tf.variant):
        with pytest.raises(TypeError, match=f"Unsupported TensorFlow dtype '{dtype.name}'"):
            fcore.TensorType(dtype)


def test_all_equal_must_be_a_bool():
    with pytest.raises(TypeError, match="all_equal must be True, False or None"):
        fcore.FederatedType(np.int32, fcore.CLIENTS, all_equal="yes")
