"""IR nodes: built type-checked, immutable, structurally equal, printed as text."""

import numpy as np
import pytest

import fcore
from fcore import ir, parse_type
from fcore.intrinsics.definitions import lookup


def ref(name, type_text):
    return ir.Reference(name, parse_type(type_text))


def intrinsic_call(uri, argument):
    return ir.Call(ir.Intrinsic(uri, lookup(uri).function_type(argument.type_signature)),
                   argument)


def test_each_node_carries_its_type():
    x = ref("x", "<a=int32,b=float32[2]>")
    assert str(ir.Selection(x, name="b").type_signature) == "float32[2]"
    assert str(ir.Selection(x, index=0).type_signature) == "int32"
    assert str(ir.Struct([("p", x), (None, ir.Literal(2.5))]).type_signature) == \
        "<p=<a=int32,b=float32[2]>,float32>"
    lam = ir.Lambda("x", x.type_signature, ir.Selection(x, name="a"))
    assert str(lam.type_signature) == "(<a=int32,b=float32[2]> -> int32)"
    assert str(ir.Call(lam, ir.Reference("y", x.type_signature)).type_signature) == "int32"
    block = ir.Block([("y", ir.Literal(7))], ir.Reference("y", parse_type("int32")))
    assert str(block.type_signature) == "int32"
    assert str(ir.Placement(fcore.SERVER).type_signature) == "placement"


def test_literals_default_and_explicit_types():
    assert str(ir.Literal(7).type_signature) == "int32"
    assert str(ir.Literal(2.5).type_signature) == "float32"
    assert str(ir.Literal(True).type_signature) == "bool"
    assert str(ir.Literal("hi").type_signature) == "str"
    assert str(ir.Literal(np.int64(7)).type_signature) == "int64"
    assert str(ir.Literal([1.0, 2.0], "float32[2]").type_signature) == "float32[2]"
    with pytest.raises(TypeError, match="is not a value of type int32"):
        ir.Literal(2.5, "int32")
    with pytest.raises(TypeError, match="known shape"):
        ir.Literal([1.0], "float32[?]")


def test_call_checks_the_argument_type():
    lam = ir.Lambda("x", parse_type("int32"), ref("x", "int32"))
    with pytest.raises(fcore.TypeMismatchError) as info:
        ir.Call(lam, ir.Literal(2.5))
    assert "Expected argument of (x:int32 -> x) of type int32, found float32" in str(info.value)
    with pytest.raises(TypeError, match="takes an argument of type int32, found none"):
        ir.Call(lam)
    with pytest.raises(TypeError, match="is not a function"):
        ir.Call(ir.Literal(1), ir.Literal(1))


def test_selection_errors_name_the_valid_elements():
    x = ref("x", "<a=int32,b=float32>")
    with pytest.raises(AttributeError, match=r"no such attribute 'c'.*Valid attributes: \(a, b\)"):
        ir.Selection(x, name="c")
    with pytest.raises(IndexError, match="Index 2 is out of range"):
        ir.Selection(x, index=2)
    with pytest.raises(TypeError, match="it is not a struct"):
        ir.Selection(ref("y", "int32"), name="a")


def test_intrinsic_calls_follow_the_table():
    call = intrinsic_call("federated_sum", ref("x", "{int32}@CLIENTS"))
    assert str(call.type_signature) == "int32@SERVER"
    assert str(call) == "federated_sum(x)"
    with pytest.raises(TypeError, match="placed at CLIENTS, but it is placed at SERVER"):
        intrinsic_call("federated_sum", ref("x", "int32@SERVER"))


def test_nodes_are_immutable_and_structurally_equal():
    a = ir.Lambda("x", parse_type("int32"), ref("x", "int32"))
    b = ir.Lambda("x", parse_type("int32"), ref("x", "int32"))
    assert a == b and hash(a) == hash(b)
    assert a != ir.Lambda("y", parse_type("int32"), ref("y", "int32"))
    assert ir.Literal(1) != ir.Literal(np.int64(1))
    with pytest.raises(AttributeError):
        a.body = None


def test_printing_forms():
    x = ref("x", "<a=int32,b=float32>")
    assert str(ir.Lambda("x", x.type_signature, ir.Struct(
        [("s", ir.Selection(x, name="b")), (None, ir.Selection(x, index=0))]))) == \
        "(x:<a=int32,b=float32> -> <s=x.b,x[0]>)"
    assert str(ir.Lambda(None, None, ir.Literal("hi"))) == '( -> "hi")'
    assert str(ir.Literal(np.int64(7))) == "7:int64"
    assert str(ir.Literal([1.5, 2.0], "float32[2]")) == "[1.5,2.0]:float32[2]"
    assert str(ir.Literal(False)) == "false"
    block = ir.Block([("a", ir.Literal(1)), ("b", ir.Literal(2))],
                     ir.Struct([(None, ref("a", "int32")), (None, ref("b", "int32"))]))
    assert str(block) == "(let a=1,b=2 in <a,b>)"
    assert ir.to_text(block, formatted=True) == "(let\n  a=1,\n  b=2\nin <a,b>)"
