"""`fcore.Struct`, the runtime value of struct types."""

import collections

import numpy as np
import pytest

from fcore import Struct


def test_access_by_attribute_index_and_name():
    s = Struct([("a", 1), ("b", 2.5)])
    assert (s.a, s.b, s[0], s[1], s["b"]) == (1, 2.5, 1, 2.5, 2.5)
    assert list(s) == [1, 2.5]
    assert len(s) == 2
    assert s.to_dict() == collections.OrderedDict(a=1, b=2.5)


def test_str_matches_tff_metrics_printing():
    metrics = Struct([("sparse_categorical_accuracy", np.float32(0.9138)),
                      ("loss", np.float32(0.27179214))])
    assert str(metrics) == "<sparse_categorical_accuracy=0.9138,loss=0.271792>"
    assert str(Struct([("accuracy", 0.91), ("loss", 0.293638), ("num_examples", 10000.0)])) == \
        "<accuracy=0.91,loss=0.293638,num_examples=10000.0>"
    assert str(Struct([("a", 1), (None, 2.5)])) == "<a=1,2.5>"
    assert str(Struct([("n", Struct([("x", np.int32(3))]))])) == "<n=<x=3>>"


def test_unknown_attribute_lists_valid_ones():
    with pytest.raises(AttributeError, match=r"no such attribute 'c'.*Valid attributes: \(a, b\)"):
        Struct([("a", 1), ("b", 2)]).c


def test_equality_and_immutability():
    assert Struct([("a", np.array([1, 2]))]) == Struct([("a", np.array([1, 2]))])
    assert Struct([("a", 1)]) != Struct([("b", 1)])
    with pytest.raises(AttributeError):
        Struct([("a", 1)]).a = 2


def test_bad_elements_are_rejected():
    with pytest.raises(ValueError, match="duplicate name 'a'"):
        Struct([("a", 1), ("a", 2)])
    with pytest.raises(TypeError, match="pairs"):
        Struct([1, 2])
    with pytest.raises(ValueError, match="have no name"):
        Struct([(None, 1)]).to_dict()
