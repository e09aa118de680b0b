"""Language-level type tests: a table of strings, each parsed and printed back exactly."""

import numpy as np
import pytest

import fcore
from fcore import (CLIENTS, SERVER, FederatedType, FunctionType, SequenceType, StructType,
                   TensorType, parse_type)

# Every type string of ../shared/spec/tff-reference.md, and the examples.
GOLDEN = [
    "int32", "float32", "float32[10]", "float32[?,784]", "float32[2]", "int32[?]", "bool",
    "str", "float32[...]", "<a=int32,b=float32>", "<int32,float32>", "<a=int32,float32>", "<>",
    "<int64>", "int32*", "<x=float32[?,784],y=int32[?]>*", "(int32 -> float32)",
    "( -> int32)", "( -> float32)", "(<x=int32,y=int32> -> int32)",
    "(<a=int32,b=int32> -> int32)", "(float32[3] -> float32[3])", "{int32}@CLIENTS",
    "int32@CLIENTS", "float32@SERVER", "<a=int32>@SERVER", "{float32}@SERVER",
    "{int32*}@CLIENTS", "({float32}@CLIENTS -> float32@SERVER)",
    "(<x={float32}@CLIENTS,w={float32}@CLIENTS> -> float32@SERVER)",
    "({int32}@CLIENTS -> int32@SERVER)", "(float32@SERVER -> float32@CLIENTS)",
    "({int32}@CLIENTS -> {int32}@CLIENTS)", "(float32@SERVER -> float32@SERVER)",
    "(<s=float32@SERVER,c={float32}@CLIENTS> -> float32@SERVER)",
    "(<a=int32,b=float32> -> <float32,int32>)", "(<a=int32,b=float32> -> float32)",
    "(int32* -> int32)", "({int32*}@CLIENTS -> int32@SERVER)",
    "(<a={int32}@CLIENTS,b={float32}@CLIENTS> -> {<int32,float32>}@CLIENTS)",
    "(<a=int32@SERVER,b=float32@SERVER> -> <a=int32,b=float32>@SERVER)",
    "(<acc=<total=float32,count=int32>,v=float32> -> <total=float32,count=int32>)",
    "(<a=<total=float32,count=int32>,b=<total=float32,count=int32>> -> "
    "<total=float32,count=int32>)",
    "(<total=float32,count=int32> -> float32)", "(float32@CLIENTS -> float32@CLIENTS)",
    "(float32@CLIENTS -> {float32}@CLIENTS)",
    "(<a={int32}@CLIENTS,b={float32}@CLIENTS> -> <total=int32@SERVER,mean=float32@SERVER>)",
    "(<a={int32}@CLIENTS,b={float32}@CLIENTS> -> <total=int32,mean=float32>@SERVER)",
    "({int32}@CLIENTS -> <int32@SERVER,int32@SERVER,int32@SERVER>)", "( -> int32@SERVER)",
    "( -> {float32}@CLIENTS)", "({float32[2]}@CLIENTS -> float32[2]@SERVER)",
    "({<a=int32,b=float32>}@CLIENTS -> <a=int32,b=float32>@SERVER)",
    "(<f=(int32 -> int32),x=int32> -> int32)",
    "(<x={float32}@CLIENTS,w={int32}@CLIENTS> -> float32@SERVER)", "(int32 -> str)",
    "( -> <model=<trainable=<dense/bias=float32[512],dense/kernel=float32[784,512],"
    "dense_1/bias=float32[10],dense_1/kernel=float32[512,10]>,non_trainable=<>>,"
    "optimizer_state=<int64>>@SERVER)",
    "placement", "T", "(T -> U)", "{T}@CLIENTS", "(int32 -> (int32 -> int32))",
]


@pytest.mark.parametrize("text", GOLDEN)
def test_parse_then_print_is_identity(text):
    assert str(parse_type(text)) == text


@pytest.mark.parametrize("text", GOLDEN)
def test_formatted_form_parses_back(text):
    t = parse_type(text)
    assert parse_type(t.formatted(width=16)) == t
    assert parse_type(t.formatted()) == t


@pytest.mark.parametrize("built, text", [
    (TensorType(np.int32), "int32"),
    (TensorType("float32", [10]), "float32[10]"),
    (TensorType(np.float32, (None, 784)), "float32[?,784]"),
    (TensorType(np.float32, None), "float32[...]"),
    (StructType([("a", np.int32), ("b", np.float32)]), "<a=int32,b=float32>"),
    (StructType([np.int32, np.float32]), "<int32,float32>"),
    (StructType([("a", np.int32), np.float32]), "<a=int32,float32>"),
    (StructType([]), "<>"),
    (SequenceType(np.int32), "int32*"),
    (FunctionType(np.int32, np.float32), "(int32 -> float32)"),
    (FunctionType(None, np.int32), "( -> int32)"),
    (FederatedType(np.int32, CLIENTS), "{int32}@CLIENTS"),
    (FederatedType(np.int32, CLIENTS, all_equal=True), "int32@CLIENTS"),
    (FederatedType(np.float32, SERVER), "float32@SERVER"),
    (FederatedType(np.float32, SERVER, all_equal=False), "{float32}@SERVER"),
    (FederatedType(StructType([("a", np.int32)]), SERVER), "<a=int32>@SERVER"),
    (fcore.PlacementType(), "placement"),
    (fcore.AbstractType("T"), "T"),
])
def test_constructed_types_print_in_tff_notation(built, text):
    assert str(built) == text
    assert parse_type(text) == built


def test_tff_unknown_rank_form_parses():
    assert parse_type("'float32'(shape=None)") == TensorType(np.float32, None)
    assert str(parse_type("'float32'(shape=None)")) == "float32[...]"


def test_whitespace_and_newlines_are_ignored():
    assert str(parse_type(" < a = int32 ,\n b = float32 [ ? , 3 ] > ")) == \
        "<a=int32,b=float32[?,3]>"


def test_formatted_breaks_long_types_and_keeps_short_ones():
    t = parse_type("<model=<trainable=<a=float32[512],b=float32[784,512]>,"
                   "non_trainable=<>>,optimizer_state=<int64>>@SERVER")
    assert t.formatted(width=200) == str(t)
    assert t.formatted(width=40) == (
        "<\n"
        "  model=<\n"
        "    trainable=<a=float32[512],b=float32[784,512]>,\n"
        "    non_trainable=<>\n"
        "  >,\n"
        "  optimizer_state=<int64>\n"
        ">@SERVER")


def test_formatted_function_form():
    t = parse_type("(<x=float32[?,784],y=int32[?]>* -> <loss=float32,accuracy=float32>)")
    assert t.formatted(width=40) == (
        "(\n"
        "  <x=float32[?,784],y=int32[?]>*\n"
        "  -> <loss=float32,accuracy=float32>\n"
        ")")


def test_repr_is_the_constructor_form():
    t = parse_type("<a=int32,b=float32[?]>@SERVER")
    assert repr(t) == ("FederatedType(StructType([('a', TensorType('int32', [])), "
                       "('b', TensorType('float32', [None]))]), SERVER, all_equal=True)")
