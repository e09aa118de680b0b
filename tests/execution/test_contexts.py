"""One context stack: calling a computation asks the current context, tracing and execution
contexts alike; a computation passed as an argument runs in the context of the call that
received it, on every executor."""

import numpy as np
import pytest
import tensorflow as tf

import fcore
from fcore import context_stack
from fcore.execution import context as execution

from support import local_cluster

inner = fcore.federated_computation(
    lambda: fcore.federated_sum(fcore.federated_value(1, fcore.CLIENTS)))
outer = fcore.parse_computation("(f:( -> int32@SERVER) -> f())")
twice = fcore.parse_computation(
    "(arg:<f=(int32 -> int32),x=int32> -> (let y=arg.f(arg.x) in arg.f(y)))")


@pytest.fixture(scope="module")
def dask_client():
    pytest.importorskip("distributed")
    yield from local_cluster()


@pytest.mark.parametrize("kind", ["reference", "fast", "dask"])
def test_a_computation_argument_runs_in_the_callers_context(kind, request):
    options = {"dask": request.getfixturevalue("dask_client")} if kind == "dask" else \
        {"kind": kind}
    with fcore.execution_context(num_clients=3, **options):
        assert inner() == 3
        assert outer(inner) == 3  # needs the context's num_clients
    add_one = fcore.tf_computation(lambda x: x + 1, tf.int32)
    with fcore.execution_context(num_clients=3, **options):
        assert twice(add_one, 5) == 7


def test_the_current_context():
    assert isinstance(context_stack.current(), execution.ExecutionContext)
    assert not context_stack.current().is_tracing
    seen = []

    @fcore.federated_computation(tf.int32)
    def f(x):
        seen.append(context_stack.current().is_tracing)
        return x
    assert seen == [True]
    with fcore.execution_context("reference", num_clients=2) as ctx:
        assert context_stack.current() is ctx
        assert execution.current().kind == "reference"
    assert execution.current().kind == "fast"


def test_executors_register_by_kind():
    assert {"reference", "fast", "dask"} <= set(execution.kinds())
    with pytest.raises(ValueError, match="Unknown execution context 'nope'"):
        fcore.execution_context("nope").__enter__()
    with pytest.raises(ValueError, match="needs dask="):
        fcore.execution_context("dask").__enter__()


def test_a_custom_context_receives_calls():
    calls = []

    class Recording(context_stack.Context):
        def invoke(self, computation, argument):
            calls.append((computation.name, argument))
            return "recorded"
    add = fcore.tf_computation(lambda x, y: x + y, tf.int32, tf.int32)
    with context_stack.install(Recording()):
        assert add(1, 2) == "recorded"
    assert calls == [("lambda", fcore.Struct([("x", 1), ("y", 2)]))]
    assert add(1, 2) == np.int32(3)
