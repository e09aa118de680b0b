"""`analysis.inline_lambdas`: lambdas called directly are inlined and nested blocks
hoisted (for programs with unique names); results are unchanged, and the fast executor then
aggregates a nested computation's client values in the caller's pass."""

import numpy as np

import fcore
from fcore.execution import streaming
from fcore.ir import analysis, nodes

PROGRAMS = [
    ("(x:int32 -> (y:int32 -> <y,x>)(x))", 3),
    ("(x:int32 -> (let a=(let b=x in <b,b>) in (y:<int32,int32> -> y[1])(a)))", 4),
    ("(x:int32 -> (let f=(y:int32 -> (let z=y in z)) in <f(x),f(2)>))", 5),
    ("(x:{int32}@CLIENTS -> (s:{int32}@CLIENTS -> federated_sum(s))(x))", [1, 2, 3]),
]


def test_inlining_keeps_results():
    for text, argument in PROGRAMS:
        comp = fcore.parse_computation(text)
        inlined = analysis.inline_lambdas(analysis.uniquify(comp.ir))
        again = fcore.Computation(inlined, "inlined")
        with fcore.execution_context("reference"):
            assert str(again(argument)) == str(comp(argument)), text


def test_called_lambdas_disappear():
    comp = fcore.parse_computation(PROGRAMS[1][0])
    inlined = analysis.inline_lambdas(analysis.uniquify(comp.ir))
    stack, calls = [inlined.body], 0
    while stack:
        node = stack.pop()
        calls += isinstance(node, nodes.Call) and isinstance(node.function, nodes.Lambda)
        stack.extend(node.children())
    assert calls == 0
    # the struct <b,b> is forwarded and its selection simplified: nothing is left to bind
    assert isinstance(inlined.body, nodes.Reference) and inlined.body.name == "x"


def test_struct_bindings_are_forwarded_and_their_calls_keep_one_binding():
    comp = fcore.parse_computation(
        "(x:{int32}@CLIENTS -> (let s=<a=federated_sum(x),b=x> in "
        "<federated_sum(s.b),s.a,s>))")
    inlined = analysis.inline_lambdas(analysis.uniquify(comp.ir))
    assert isinstance(inlined.body, nodes.Block)
    assert [str(v) for _, v in inlined.body.locals] == ["federated_sum(x)"]  # once
    (name, _), = inlined.body.locals
    assert str(inlined.body.result) == f"<federated_sum(x),{name},<a={name},b=x>>"
    with fcore.execution_context("reference"):
        assert str(fcore.Computation(inlined, "inlined")([1, 2, 3])) == \
            str(comp([1, 2, 3]))


def test_an_all_equal_argument_keeps_its_call():
    comp = fcore.parse_computation(
        "(s:int32@SERVER -> (v:{int32}@CLIENTS -> federated_sum(v))(federated_broadcast(s)))")
    with fcore.execution_context("fast", num_clients=3):
        assert comp(np.int32(2)) == 6


def test_a_nested_computations_aggregations_join_the_callers_pass():
    passes = []
    original = streaming.StreamingInterpreter._pass

    def recorded(self, env, values, per_client, aggregates, materialise):
        passes.append((len(aggregates), sorted(materialise)))
        return original(self, env, values, per_client, aggregates, materialise)
    double = fcore.tf_computation(lambda v: v * 2, np.float32)
    inner = fcore.federated_computation(
        lambda v: fcore.federated_mean(v), fcore.FederatedType(np.float32, fcore.CLIENTS))

    @fcore.federated_computation(fcore.FederatedType(np.float32, fcore.CLIENTS))
    def outer(x):
        doubled = fcore.federated_map(double, x)
        return fcore.federated_sum(doubled), inner(doubled)
    streaming.StreamingInterpreter._pass = recorded
    try:
        with fcore.execution_context("fast"):
            assert outer([1.0, 2.0, 6.0]) == (18.0, 6.0)
    finally:
        streaming.StreamingInterpreter._pass = original
    assert passes == [(2, [])]  # both aggregations in one pass, no client list kept
