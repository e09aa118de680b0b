"""The text form of computations: parse errors with positions, and print -> parse round trips
over randomly built programs."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fcore
from fcore import ir, parse_computation, parse_type
from fcore.tracing.computation import Computation


def test_parse_builds_a_callable_computation():
    comp = parse_computation("(x:{int32}@CLIENTS -> federated_sum(x))")
    assert str(comp.type_signature) == "({int32}@CLIENTS -> int32@SERVER)"
    assert comp([1, 2, 3]) == 6
    assert str(comp) == "(x:{int32}@CLIENTS -> federated_sum(x))"


def test_blocks_and_whitespace_and_newlines():
    text = """
    (s:float32@SERVER ->
      (let b=federated_broadcast(s),
           n=federated_map(<(v:float32 -> <v,v>), b>)
       in n))"""
    comp = parse_computation(text)
    assert str(comp.type_signature) == "(float32@SERVER -> {<float32,float32>}@CLIENTS)"
    with fcore.execution_context(num_clients=2):
        assert [tuple(x) for x in comp(1.5)] == [(1.5, 1.5), (1.5, 1.5)]


@pytest.mark.parametrize("text, position, message", [
    ("(x:{int32}@CLIENTS -> federated_sum(y))", (1, 37), "the name 'y' is not bound here"),
    ("(x:int32@SERVER -> federated_sum(x))", (1, 20),
     "The value to be summed should be placed at CLIENTS, but it is placed at SERVER"),
    ("(x:{int32}@CLIENTS -> federated_sum(x)", (1, 39), "expected ')', found the end"),
    ("(x:{int32}@CLIENTS -> federated_map(<@f,x>))", (1, 38), "@f is not in env"),
    ("(x:{int32@CLIENTS -> x)", (1, 19), "expected one of '*', '@', '}', found '->'"),
    ("(x:<a=int32> -> x.b)", (1, 17), "no such attribute 'b'"),
    ("(x:int32 -> x(x))", (1, 13), "is not a function"),
    ("(x:int32 -> federated_sum)", (1, 13), "must be called"),
    ("( -> 2.5:int32)", (1, 6), "is not a value of type int32"),
    ("( ->\n  <a=1,\n   b=nope>)", (3, 6), "the name 'nope' is not bound"),
])
def test_errors_give_line_column_and_caret(text, position, message):
    with pytest.raises(fcore.TypeParseError) as info:
        parse_computation(text)
    error = info.value
    assert (error.line, error.column) == position, str(error)
    assert message in str(error)
    assert "\n  " + text.splitlines()[position[0] - 1] + "\n" in str(error)
    assert str(error).rstrip().endswith("^")


def test_type_errors_in_text_are_both_value_and_type_errors():
    with pytest.raises(fcore.ComputationTypeError) as info:
        parse_computation("(x:int32@SERVER -> federated_sum(x))")
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)


def test_a_non_function_is_rejected():
    with pytest.raises(fcore.ComputationTypeError, match="must have a function type"):
        parse_computation("<1,2>")


def test_deep_nesting_is_rejected_without_a_crash():
    text = "( -> " + "<" * 300 + "1" + ">" * 300 + ")"
    with pytest.raises(fcore.TypeParseError, match="nesting is deeper"):
        parse_computation(text)


def test_env_entries_may_be_federated_computations():
    inner = parse_computation("(x:{int32}@CLIENTS -> federated_sum(x))")
    outer = parse_computation("(y:{int32}@CLIENTS -> @total(y))", {"total": inner})
    assert outer([4, 5]) == 9


# Random programs --------------------------------------------------------------------------

SCALARS = {
    "int32": st.integers(-2**31, 2**31 - 1),
    "int64": st.integers(-2**63, 2**63 - 1),
    "float32": st.floats(width=32, allow_nan=False, allow_infinity=False),
    "float64": st.floats(allow_nan=False, allow_infinity=False),
    "bool": st.booleans(),
    "str": st.text(max_size=8),
    "uint8": st.integers(0, 255),
}
NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True)


def literal(data):
    dtype = data.draw(st.sampled_from(sorted(SCALARS)))
    if dtype != "str" and data.draw(st.booleans()):
        values = data.draw(st.lists(SCALARS[dtype], min_size=1, max_size=3))
        return ir.Literal(np.asarray(values, dtype=dtype), f"{dtype}[{len(values)}]")
    return ir.Literal(data.draw(SCALARS[dtype]), dtype)


def expression(data, scope, depth):
    kinds = ["literal"] + (["reference"] if scope else [])
    if depth < 3:
        kinds += ["struct", "select", "block", "call"]
    kind = data.draw(st.sampled_from(kinds))
    if kind == "literal":
        return literal(data)
    if kind == "reference":
        name, type_ = data.draw(st.sampled_from(sorted(scope.items(), key=lambda x: x[0])))
        return ir.Reference(name, type_)
    if kind == "struct":
        count = data.draw(st.integers(0, 3))
        names = data.draw(st.lists(st.one_of(st.none(), NAMES), min_size=count, max_size=count,
                                   unique_by=lambda n: n or object()))
        return ir.Struct([(n, expression(data, scope, depth + 1)) for n in names])
    if kind == "select":
        source = expression(data, scope, depth + 1)
        struct = source.type_signature
        if not isinstance(struct, fcore.StructType) or len(struct) == 0:
            return source
        index = data.draw(st.integers(0, len(struct) - 1))
        name = struct.names()[index]
        if name is not None and data.draw(st.booleans()):
            return ir.Selection(source, name=name)
        return ir.Selection(source, index=index)
    if kind == "block":
        name = data.draw(NAMES)
        value = expression(data, scope, depth + 1)
        inner = {**scope, name: value.type_signature}
        return ir.Block([(name, value)], expression(data, inner, depth + 1))
    argument = expression(data, scope, depth + 1)
    name = data.draw(NAMES)
    body = expression(data, {**scope, name: argument.type_signature}, depth + 1)
    return ir.Call(ir.Lambda(name, argument.type_signature, body), argument)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_random_programs_round_trip_through_text(data):
    parameter_type = parse_type(data.draw(st.sampled_from(
        ["int32", "<a=float32,b=<c=int64[2]>>", "{int32}@CLIENTS", "<x=str,y=bool[3]>*"])))
    body = expression(data, {"arg": parameter_type}, 0)
    comp = Computation(ir.Lambda("arg", parameter_type, body), "random")
    assert parse_computation(str(comp)) == comp
    assert parse_computation(comp.to_text(formatted=True)) == comp
