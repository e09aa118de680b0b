"""Every intrinsic in `fcore.intrinsics.definitions.INTRINSICS`: its type rule on well-typed and
ill-typed arguments, both directly (`lookup(uri).result_type(type)`) and through the user
functions inside `@fcore.federated_computation`, and what it computes on small inputs."""

import collections

import numpy as np
import pytest
import tensorflow as tf

import fcore
from fcore import CLIENTS, SERVER, FederatedType, SequenceType, StructType, TensorType
from fcore.intrinsics import definitions

P = fcore.parse_type


def result_type(uri, argument):
    return definitions.lookup(uri).result_type(P(argument))


# The rules, directly -----------------------------------------------------------------------

WELL_TYPED = [
    ("federated_broadcast", "int32@SERVER", "int32@CLIENTS"),
    ("federated_broadcast", "<a=float32[2]>@SERVER", "<a=float32[2]>@CLIENTS"),
    ("federated_value_at_server", "<int32,float32[2]>", "<int32,float32[2]>@SERVER"),
    ("federated_value_at_clients", "int32", "int32@CLIENTS"),
    ("federated_value_at_clients", "int32*", "int32*@CLIENTS"),
    ("federated_eval_at_server", "( -> int32)", "int32@SERVER"),
    ("federated_eval_at_clients", "( -> <a=int32>)", "{<a=int32>}@CLIENTS"),
    ("federated_map", "<(int32 -> float32),{int32}@CLIENTS>", "{float32}@CLIENTS"),
    ("federated_map", "<(int32 -> float32),int32@CLIENTS>", "{float32}@CLIENTS"),
    ("federated_map", "<(float32[?] -> int32),{float32[3]}@CLIENTS>", "{int32}@CLIENTS"),
    ("federated_apply", "<(int32 -> float32),int32@SERVER>", "float32@SERVER"),
    ("federated_sum", "{int32}@CLIENTS", "int32@SERVER"),
    ("federated_sum", "{<a=int32,b=float32[2]>}@CLIENTS", "<a=int32,b=float32[2]>@SERVER"),
    ("federated_sum", "int32@CLIENTS", "int32@SERVER"),
    ("federated_mean", "{float32}@CLIENTS", "float32@SERVER"),
    ("federated_mean", "{<a=float32,b=float64[2]>}@CLIENTS", "<a=float32,b=float64[2]>@SERVER"),
    ("federated_weighted_mean", "<{float32}@CLIENTS,{int32}@CLIENTS>", "float32@SERVER"),
    ("federated_weighted_mean", "<{<a=float32>}@CLIENTS,{float32}@CLIENTS>",
     "<a=float32>@SERVER"),
    ("federated_min", "{<a=int32,b=float32>}@CLIENTS", "<a=int32,b=float32>@SERVER"),
    ("federated_max", "{float32[2]}@CLIENTS", "float32[2]@SERVER"),
    ("federated_aggregate",
     "<{float32}@CLIENTS,int32,(<int32,float32> -> int32),(<int32,int32> -> int32),"
     "(int32 -> float32)>", "float32@SERVER"),
    ("federated_secure_sum", "<{int32}@CLIENTS,int32>", "int32@SERVER"),
    ("federated_secure_sum", "<{<int32,int64>}@CLIENTS,<int32,int32>>", "<int32,int64>@SERVER"),
    ("federated_secure_sum_bitwidth", "<{int64[2]}@CLIENTS,int32>", "int64[2]@SERVER"),
    ("federated_zip_at_server", "<a=int32@SERVER,b=<c=float32@SERVER>>",
     "<a=int32,b=<c=float32>>@SERVER"),
    ("federated_zip_at_clients", "<{int32}@CLIENTS,float32@CLIENTS>",
     "{<int32,float32>}@CLIENTS"),
    ("sequence_map", "<(int32 -> float32),int32*>", "float32*"),
    ("sequence_reduce", "<int32*,int32,(<int32,int32> -> int32)>", "int32"),
    ("sequence_reduce", "<int32*,float32,(<float32,int32> -> float32)>", "float32"),
    ("sequence_sum", "<a=int32,b=float32>*", "<a=int32,b=float32>"),
]

ILL_TYPED = [
    ("federated_broadcast", "int32",
     "The value to be broadcasted should be placed at SERVER, but it is not a federated value: "
     "int32."),
    ("federated_broadcast", "{int32}@CLIENTS",
     "The value to be broadcasted should be placed at SERVER, but it is placed at CLIENTS."),
    ("federated_broadcast", "{int32}@SERVER",
     "The broadcasted value should be equal at all locations, found {int32}@SERVER."),
    ("federated_value_at_server", "int32@CLIENTS",
     "Cannot place value int32@CLIENTS containing federated types at another placement; "
     "requested to be placed at SERVER."),
    ("federated_value_at_clients", "<a=int32@SERVER>",
     "Cannot place value <a=int32@SERVER> containing federated types at another placement; "
     "requested to be placed at CLIENTS."),
    ("federated_eval_at_server", "(int32 -> int32)",
     "federated_eval expects a function with no parameter, found (int32 -> int32)."),
    ("federated_eval_at_server", "int32",
     "federated_eval expects its argument to be a function, found int32."),
    ("federated_eval_at_clients", "( -> int32@SERVER)",
     "Cannot place value int32@SERVER containing federated types at another placement; "
     "requested to be placed at CLIENTS."),
    ("federated_map", "<(int32 -> float32),int32@SERVER>",
     "The value to be mapped should be placed at CLIENTS, but it is placed at SERVER."),
    ("federated_map", "<int32,{int32}@CLIENTS>",
     "federated_map expects the mapping function to be a function, found int32."),
    ("federated_map", "(int32 -> float32)",
     "federated_map expects an argument <(T -> U),T@CLIENTS>, found (int32 -> float32)."),
    ("federated_map", "<(int32 -> float32),{float32}@CLIENTS>",
     "The mapping function expects a parameter of type int32, but member constituents of the "
     "mapped value are of incompatible type float32."),
    ("federated_apply", "<(int32 -> float32),{int32}@CLIENTS>",
     "The value to be mapped should be placed at SERVER, but it is placed at CLIENTS."),
    ("federated_sum", "int32",
     "The value to be summed should be placed at CLIENTS, but it is not a federated value: "
     "int32."),
    ("federated_sum", "{str}@CLIENTS",
     "The value type {str}@CLIENTS is not compatible with the sum operator."),
    ("federated_mean", "{<a=float32,b=int32>}@CLIENTS",
     "The value type {<a=float32,b=int32>}@CLIENTS is not compatible with the average "
     "operator."),
    ("federated_weighted_mean", "<{float32}@CLIENTS,{float32[2]}@CLIENTS>",
     "The weight of federated_mean must be a numeric scalar at CLIENTS, found "
     "{float32[2]}@CLIENTS."),
    ("federated_weighted_mean", "<{float32}@CLIENTS,float32@SERVER>",
     "The value of the weight should be placed at CLIENTS, but it is placed at SERVER."),
    ("federated_weighted_mean", "{float32}@CLIENTS",
     "federated_mean expects an argument <value,weight>, found {float32}@CLIENTS."),
    ("federated_min", "{str}@CLIENTS",
     "The value type {str}@CLIENTS is not compatible with federated_min."),
    ("federated_max", "{complex64}@CLIENTS",
     "The value type {complex64}@CLIENTS is not compatible with federated_max."),
    ("federated_max", "float32@SERVER",
     "The value of federated_max should be placed at CLIENTS, but it is placed at SERVER."),
    ("federated_aggregate",
     "<{float32}@CLIENTS,int32@SERVER,(<int32,float32> -> int32),(<int32,int32> -> int32),"
     "(int32 -> float32)>",
     "The zero of federated_aggregate must not be federated, found int32@SERVER."),
    ("federated_aggregate",
     "<{float32}@CLIENTS,int32,(<int32,float32> -> int32),(<int32,int32> -> int32),"
     "(float32 -> float32)>",
     "Expected parameter `report` to be of type (int32 -> float32), but received "
     "(float32 -> float32) instead."),
    ("federated_secure_sum", "<{float32}@CLIENTS,int32>",
     "federated_secure_sum needs integer values, found {float32}@CLIENTS."),
    ("federated_secure_sum", "<{int32}@CLIENTS,float32>",
     "The max_input of federated_secure_sum must be integers, found float32."),
    ("federated_secure_sum", "<{<int32,int64>}@CLIENTS,<int32,int32,int32>>",
     "The max_input <int32,int32,int32> of federated_secure_sum must be one integer or match "
     "the structure of <int32,int64>."),
    ("federated_secure_sum_bitwidth", "<int32@SERVER,int32>",
     "The value to be summed securely should be placed at CLIENTS, but it is placed at "
     "SERVER."),
    ("federated_zip_at_server", "<int32@SERVER,{int32}@CLIENTS>",
     "federated_zip requires all nested FederatedTypes to have the same placement, but values "
     "placed at CLIENTS, SERVER were found."),
    ("federated_zip_at_server", "<>",
     "federated_zip expects a non-empty struct of federated values, found <>."),
    ("federated_zip_at_server", "<int32@SERVER,int32>",
     "federated_zip expects only federated values in the struct, found int32."),
    ("federated_zip_at_clients", "<int32@SERVER>",
     "federated_zip requires all nested FederatedTypes to have the same placement, but values "
     "placed at SERVER were found."),
    ("sequence_map", "<(float32 -> float32),int32*>",
     "The mapping function expects a parameter of type float32, but the sequence elements are "
     "of incompatible type int32."),
    ("sequence_map", "<(int32 -> float32),int32>",
     "sequence_map expects a sequence (T*), found int32."),
    ("sequence_reduce", "<int32*,int32,(<int32,int32> -> float32)>",
     "The reducing function returns float32, which does not fit the zero's type int32."),
    ("sequence_reduce", "<int32*,int32>",
     "sequence_reduce expects an argument <T*,U,(<U,T> -> U)>, found <int32*,int32>."),
    ("sequence_sum", "str*", "The element type str is not compatible with the sum operator."),
    ("sequence_sum", "int32", "sequence_sum expects a sequence (T*), found int32."),
]


def test_every_intrinsic_has_well_typed_and_ill_typed_rule_cases():
    assert {uri for uri, _, _ in WELL_TYPED} == set(definitions.INTRINSICS)
    assert {uri for uri, _, _ in ILL_TYPED} == set(definitions.INTRINSICS)


@pytest.mark.parametrize("uri, argument, result", WELL_TYPED)
def test_rule_gives_the_result_type(uri, argument, result):
    assert str(result_type(uri, argument)) == result
    function_type = definitions.lookup(uri).function_type(P(argument))
    assert str(function_type) == f"({argument} -> {result})"


@pytest.mark.parametrize("uri, argument, message", ILL_TYPED)
def test_rule_rejects_an_ill_typed_argument_with_a_clear_message(uri, argument, message):
    with pytest.raises(TypeError) as info:
        result_type(uri, argument)
    assert str(info.value) == message


def test_rule_without_an_argument_names_the_parameter_it_takes():
    with pytest.raises(TypeError, match=r"^federated_sum takes an argument of type "
                                        r"\{T\}@CLIENTS\.$"):
        definitions.lookup("federated_sum").result_type(None)


def test_lookup_of_an_unknown_intrinsic_raises_name_error():
    with pytest.raises(NameError, match="Unknown intrinsic 'federated_nope'"):
        definitions.lookup("federated_nope")


@pytest.mark.parametrize("uri", sorted(set(definitions.INTRINSICS) - {
    "federated_zip_at_server", "federated_zip_at_clients"}))
def test_intrinsic_signature_parses_as_a_function_type(uri):
    # The zips are variadic (`...`), documentation only.
    signature = definitions.INTRINSICS[uri].signature
    assert str(P(signature)) == signature
    assert isinstance(P(signature), fcore.FunctionType)


@pytest.mark.parametrize("uri, argument", [
    ("federated_sum", "{bool}@CLIENTS"),
    ("federated_min", "{bool}@CLIENTS"),
    ("federated_max", "{bool}@CLIENTS"),
    ("sequence_sum", "bool*"),
    ("federated_weighted_mean", "<{float32}@CLIENTS,{bool}@CLIENTS>"),
])
def test_bool_values_are_not_numbers_for_arithmetic_intrinsics(uri, argument):
    with pytest.raises(TypeError, match="bool"):
        result_type(uri, argument)


def test_federated_aggregate_rule_rejects_accumulate_not_returning_the_zero_type():
    with pytest.raises(TypeError, match="accumulate"):
        result_type("federated_aggregate",
                    "<{float32}@CLIENTS,int32,(<int32,float32> -> float32),"
                    "(<float32,float32> -> float32),(float32 -> float32)>")


def test_federated_value_of_a_function_says_functions_cannot_be_placed():
    with pytest.raises(TypeError) as info:
        result_type("federated_value_at_server", "(int32 -> int32)")
    assert "function" in str(info.value)
    assert "federated types" not in str(info.value)


# The rules through the user functions -----------------------------------------------------

AB = StructType([("a", np.int32), ("b", np.float32)])
XY = StructType([("x", np.float32), ("y", np.int32)])


@fcore.tf_computation(np.int32)
def add_one(x):
    return x + 1


@fcore.tf_computation(np.float32)
def halve(x):
    return x / 2


@fcore.tf_computation(np.int32, np.int32)
def add(a, b):
    return a + b


@fcore.tf_computation
def seven():
    return tf.constant(7)


@fcore.tf_computation
def ones():
    return tf.ones([2])


@fcore.tf_computation(np.int32, np.float32)
def count_and_add(count, value):
    return count + tf.cast(value > 0, tf.int32)


@fcore.tf_computation(np.int32)
def as_float(x):
    return tf.cast(x, tf.float32)


@fcore.tf_computation(XY)
def x_times_y(e):
    return e.x * tf.cast(e.y, tf.float32)


@fcore.tf_computation(SequenceType(np.float32))
def sum_floats(ds):
    return ds.reduce(np.float32(0), lambda a, b: a + b)


@fcore.federated_computation(FederatedType(np.float32, SERVER))
def broadcast(x):
    return fcore.federated_broadcast(x)


@fcore.federated_computation(FederatedType(np.float32, SERVER))
def broadcast_and_sum(x):
    return fcore.federated_sum(fcore.federated_map(halve, fcore.federated_broadcast(x)))


@fcore.federated_computation
def value_at_server():
    return fcore.federated_value(np.int32(3), SERVER)


@fcore.federated_computation
def value_at_clients():
    return fcore.federated_value(np.int32(3), CLIENTS)


@fcore.federated_computation
def sum_of_value_at_clients():
    return fcore.federated_sum(fcore.federated_value(np.int32(3), CLIENTS))


@fcore.federated_computation
def eval_at_server():
    return fcore.federated_eval(seven, SERVER)


@fcore.federated_computation
def eval_at_clients():
    return fcore.federated_eval(ones, CLIENTS)


@fcore.federated_computation(FederatedType(np.int32, CLIENTS))
def map_at_clients(x):
    return fcore.federated_map(add_one, x)


@fcore.federated_computation(FederatedType(np.int32, CLIENTS, all_equal=True))
def map_all_equal(x):
    return fcore.federated_map(add_one, x)


@fcore.federated_computation(FederatedType(np.int32, SERVER))
def map_at_server(x):
    return fcore.federated_map(add_one, x)


@fcore.federated_computation(FederatedType(XY, SERVER))
def map_python_function_at_server(v):
    return fcore.federated_map(lambda e: (e.y, x_times_y(e)), v)


@fcore.federated_computation(FederatedType(np.int32, CLIENTS))
def sum_at_clients(x):
    return fcore.federated_sum(x)


@fcore.federated_computation(FederatedType(StructType([("a", np.float32),
                                                       ("b", TensorType(np.float32, [2]))]),
                                          CLIENTS))
def mean_of_structs(x):
    return fcore.federated_mean(x)


@fcore.federated_computation(FederatedType(StructType([("a", np.float32),
                                                       ("b", TensorType(np.float32, [2]))]),
                                          CLIENTS),
                             FederatedType(np.float32, CLIENTS))
def weighted_mean_of_structs(x, w):
    return fcore.federated_mean(x, w)


@fcore.federated_computation(FederatedType(np.int32, CLIENTS))
def minimum(x):
    return fcore.federated_min(x)


@fcore.federated_computation(FederatedType(np.int32, CLIENTS))
def maximum(x):
    return fcore.federated_max(x)


@fcore.federated_computation(FederatedType(XY, CLIENTS))
def extremes_of_structs(v):
    return fcore.federated_min(v), fcore.federated_max(v)


@fcore.federated_computation(FederatedType(np.float32, CLIENTS))
def count_positive(x):
    return fcore.federated_aggregate(x, np.int32(0), count_and_add, add, as_float)


@fcore.federated_computation(FederatedType(np.int32, CLIENTS))
def secure_sum(x):
    return fcore.federated_secure_sum(x, 10)


@fcore.federated_computation(FederatedType(StructType([("a", np.int32),
                                                       ("b", TensorType(np.int64, [2]))]),
                                          CLIENTS))
def secure_sum_of_structs(x):
    return fcore.federated_secure_sum(x, (5, 100))


@fcore.federated_computation(FederatedType(np.int32, CLIENTS))
def secure_sum_bitwidth(x):
    return fcore.federated_secure_sum_bitwidth(x, 3)


@fcore.federated_computation(FederatedType(np.int32, SERVER), FederatedType(XY, SERVER))
def zip_at_server(a, b):
    return fcore.federated_zip(collections.OrderedDict(a=a, b=b))


@fcore.federated_computation(FederatedType(np.int32, CLIENTS),
                             FederatedType(np.float32, CLIENTS, all_equal=True))
def zip_at_clients(a, b):
    return fcore.federated_zip((a, b))


@fcore.federated_computation(SequenceType(XY))
def map_sequence(s):
    return fcore.sequence_map(x_times_y, s)


@fcore.federated_computation(SequenceType(XY))
def map_then_reduce_in_tf(s):
    return sum_floats(fcore.sequence_map(x_times_y, s))


@fcore.federated_computation(SequenceType(np.int32))
def reduce_sequence(s):
    return fcore.sequence_reduce(s, np.int32(0), add)


@fcore.federated_computation(SequenceType(np.int32))
def last_element(s):
    return fcore.sequence_reduce(s, np.int32(-1), lambda acc, x: x)


@fcore.federated_computation(SequenceType(XY))
def sum_sequence(s):
    return fcore.sequence_sum(s)


TRACED = [
    ("federated_broadcast", broadcast, "(float32@SERVER -> float32@CLIENTS)"),
    ("federated_value_at_server", value_at_server, "( -> int32@SERVER)"),
    ("federated_value_at_clients", value_at_clients, "( -> int32@CLIENTS)"),
    ("federated_eval_at_server", eval_at_server, "( -> int32@SERVER)"),
    ("federated_eval_at_clients", eval_at_clients, "( -> {float32[2]}@CLIENTS)"),
    ("federated_map", map_at_clients, "({int32}@CLIENTS -> {int32}@CLIENTS)"),
    ("federated_map", map_all_equal, "(int32@CLIENTS -> {int32}@CLIENTS)"),
    ("federated_apply", map_at_server, "(int32@SERVER -> int32@SERVER)"),
    ("federated_apply", map_python_function_at_server,
     "(<x=float32,y=int32>@SERVER -> <int32,float32>@SERVER)"),
    ("federated_sum", sum_at_clients, "({int32}@CLIENTS -> int32@SERVER)"),
    ("federated_mean", mean_of_structs,
     "({<a=float32,b=float32[2]>}@CLIENTS -> <a=float32,b=float32[2]>@SERVER)"),
    ("federated_weighted_mean", weighted_mean_of_structs,
     "(<x={<a=float32,b=float32[2]>}@CLIENTS,w={float32}@CLIENTS> -> "
     "<a=float32,b=float32[2]>@SERVER)"),
    ("federated_min", minimum, "({int32}@CLIENTS -> int32@SERVER)"),
    ("federated_max", maximum, "({int32}@CLIENTS -> int32@SERVER)"),
    ("federated_aggregate", count_positive, "({float32}@CLIENTS -> float32@SERVER)"),
    ("federated_secure_sum", secure_sum, "({int32}@CLIENTS -> int32@SERVER)"),
    ("federated_secure_sum_bitwidth", secure_sum_bitwidth, "({int32}@CLIENTS -> int32@SERVER)"),
    ("federated_zip_at_server", zip_at_server,
     "(<a=int32@SERVER,b=<x=float32,y=int32>@SERVER> -> <a=int32,b=<x=float32,y=int32>>@SERVER)"),
    ("federated_zip_at_clients", zip_at_clients,
     "(<a={int32}@CLIENTS,b=float32@CLIENTS> -> {<int32,float32>}@CLIENTS)"),
    ("sequence_map", map_sequence, "(<x=float32,y=int32>* -> float32*)"),
    ("sequence_reduce", reduce_sequence, "(int32* -> int32)"),
    ("sequence_reduce", last_element, "(int32* -> int32)"),
    ("sequence_sum", sum_sequence, "(<x=float32,y=int32>* -> <x=float32,y=int32>)"),
]


def test_every_intrinsic_is_used_by_a_traced_computation():
    assert {uri for uri, _, _ in TRACED} == set(definitions.INTRINSICS)


@pytest.mark.parametrize("uri, computation, signature", TRACED,
                         ids=[f"{uri}-{c.name}" for uri, c, _ in TRACED])
def test_traced_computation_calls_the_intrinsic_at_the_rule_s_type(uri, computation, signature):
    assert str(computation.type_signature) == signature
    assert f"{uri}(" in str(computation)


def _broadcast_clients():
    @fcore.federated_computation(FederatedType(np.float32, CLIENTS))
    def f(x):
        return fcore.federated_broadcast(x)


def _value_of_clients_at_server():
    @fcore.federated_computation(FederatedType(np.int32, CLIENTS))
    def f(x):
        return fcore.federated_value(x, SERVER)


def _value_of_server_at_clients():
    @fcore.federated_computation(FederatedType(np.int32, SERVER))
    def f(x):
        return fcore.federated_value(x, CLIENTS)


def _eval_with_a_parameter_at_server():
    @fcore.federated_computation
    def f():
        return fcore.federated_eval(add_one, SERVER)


def _eval_of_a_server_value_at_clients():
    @fcore.federated_computation
    def f():
        return fcore.federated_eval(value_at_server, CLIENTS)


def _map_floats_at_clients():
    @fcore.federated_computation(FederatedType(np.float32, CLIENTS))
    def f(x):
        return fcore.federated_map(add_one, x)


def _map_floats_at_server():
    @fcore.federated_computation(FederatedType(np.float32, SERVER))
    def f(x):
        return fcore.federated_map(add_one, x)


def _sum_at_server():
    @fcore.federated_computation(FederatedType(np.int32, SERVER))
    def f(x):
        return fcore.federated_sum(x)


def _mean_of_ints():
    @fcore.federated_computation(FederatedType(np.int32, CLIENTS))
    def f(x):
        return fcore.federated_mean(x)


def _mean_with_vector_weights():
    @fcore.federated_computation(FederatedType(np.float32, CLIENTS),
                                 FederatedType(TensorType(np.float32, [2]), CLIENTS))
    def f(x, w):
        return fcore.federated_mean(x, w)


def _min_of_strings():
    @fcore.federated_computation(FederatedType(str, CLIENTS))
    def f(x):
        return fcore.federated_min(x)


def _max_at_server():
    @fcore.federated_computation(FederatedType(np.int32, SERVER))
    def f(x):
        return fcore.federated_max(x)


def _aggregate_with_a_mismatched_report():
    @fcore.federated_computation(FederatedType(np.float32, CLIENTS))
    def f(x):
        return fcore.federated_aggregate(x, np.int32(0), count_and_add, add, halve)


def _secure_sum_of_floats():
    @fcore.federated_computation(FederatedType(np.float32, CLIENTS))
    def f(x):
        return fcore.federated_secure_sum(x, 10)


def _secure_sum_with_a_float_bitwidth():
    @fcore.federated_computation(FederatedType(np.int32, CLIENTS))
    def f(x):
        return fcore.federated_secure_sum_bitwidth(x, 3.0)


def _zip_with_an_unplaced_value_at_server():
    @fcore.federated_computation(FederatedType(np.int32, SERVER))
    def f(x):
        return fcore.federated_zip((x, np.int32(1)))


def _zip_with_an_unplaced_value_at_clients():
    @fcore.federated_computation(FederatedType(np.int32, CLIENTS))
    def f(x):
        return fcore.federated_zip((x, np.int32(1)))


def _sequence_map_with_a_mismatched_function():
    @fcore.federated_computation(SequenceType(np.float32))
    def f(s):
        return fcore.sequence_map(add_one, s)


def _sequence_reduce_with_a_float_result():
    @fcore.federated_computation(SequenceType(np.int32))
    def f(s):
        return fcore.sequence_reduce(s, np.int32(0), lambda acc, x: as_float(x))


def _sequence_sum_of_strings():
    @fcore.federated_computation(SequenceType(str))
    def f(s):
        return fcore.sequence_sum(s)


ILL_TRACED = [
    ("federated_broadcast", _broadcast_clients,
     "The value to be broadcasted should be placed at SERVER, but it is placed at CLIENTS."),
    ("federated_value_at_server", _value_of_clients_at_server,
     "Cannot place value x containing federated types at another placement; requested to be "
     "placed at SERVER."),
    ("federated_value_at_clients", _value_of_server_at_clients,
     "Cannot place value x containing federated types at another placement; requested to be "
     "placed at CLIENTS."),
    ("federated_eval_at_server", _eval_with_a_parameter_at_server,
     "federated_eval expects a function with no parameter, found (int32 -> int32)."),
    ("federated_eval_at_clients", _eval_of_a_server_value_at_clients,
     "Cannot place value int32@SERVER containing federated types at another placement; "
     "requested to be placed at CLIENTS."),
    ("federated_map", _map_floats_at_clients,
     "The mapping function expects a parameter of type int32, but member constituents of the "
     "mapped value are of incompatible type float32."),
    ("federated_apply", _map_floats_at_server,
     "The mapping function expects a parameter of type int32, but member constituents of the "
     "mapped value are of incompatible type float32."),
    ("federated_sum", _sum_at_server,
     "The value to be summed should be placed at CLIENTS, but it is placed at SERVER."),
    ("federated_mean", _mean_of_ints,
     "The value type {int32}@CLIENTS is not compatible with the average operator."),
    ("federated_weighted_mean", _mean_with_vector_weights,
     "The weight of federated_mean must be a numeric scalar at CLIENTS, found "
     "{float32[2]}@CLIENTS."),
    ("federated_min", _min_of_strings,
     "The value type {str}@CLIENTS is not compatible with federated_min."),
    ("federated_max", _max_at_server,
     "The value of federated_max should be placed at CLIENTS, but it is placed at SERVER."),
    ("federated_aggregate", _aggregate_with_a_mismatched_report,
     "Expected parameter `report` to be of type (int32 -> float32), but received "
     "(float32 -> float32) instead."),
    ("federated_secure_sum", _secure_sum_of_floats,
     "federated_secure_sum needs integer values, found {float32}@CLIENTS."),
    ("federated_secure_sum_bitwidth", _secure_sum_with_a_float_bitwidth,
     "The bitwidth of federated_secure_sum_bitwidth must be integers, found float32."),
    ("federated_zip_at_server", _zip_with_an_unplaced_value_at_server,
     "federated_zip expects only federated values in the struct, found int32."),
    ("federated_zip_at_clients", _zip_with_an_unplaced_value_at_clients,
     "federated_zip expects only federated values in the struct, found int32."),
    ("sequence_map", _sequence_map_with_a_mismatched_function,
     "The mapping function expects a parameter of type int32, but the sequence elements are "
     "of incompatible type float32."),
    ("sequence_reduce", _sequence_reduce_with_a_float_result,
     "The reducing function returns float32, which does not fit the zero's type int32."),
    ("sequence_sum", _sequence_sum_of_strings,
     "The element type str is not compatible with the sum operator."),
]


def test_every_intrinsic_has_an_ill_typed_traced_use():
    assert {uri for uri, _, _ in ILL_TRACED} == set(definitions.INTRINSICS)


@pytest.mark.parametrize("uri, define, message", ILL_TRACED,
                         ids=[f"{uri}-{d.__name__[1:]}" for uri, d, _ in ILL_TRACED])
def test_ill_typed_use_fails_at_definition_naming_the_function(uri, define, message):
    with pytest.raises(TypeError) as info:
        define()
    text = str(info.value)
    assert text.startswith(message + "\n  (in federated computation 'f', "), text
    assert "test_intrinsic_rules.py:" in text.splitlines()[-1]


# Results on small inputs ------------------------------------------------------------------


def scalar(result, value, dtype):
    assert type(result) is dtype, (result, type(result))
    assert result == value


def test_federated_broadcast_gives_the_value_to_every_client():
    with fcore.execution_context(num_clients=4):
        scalar(broadcast(2.5), 2.5, np.float32)
        scalar(broadcast_and_sum(3.0), 6.0, np.float32)


def test_federated_value_at_server_is_the_constant():
    scalar(value_at_server(), 3, np.int32)


def test_federated_value_at_clients_is_one_all_equal_value():
    with pytest.raises(fcore.CardinalityError, match=r"num_clients=N"):
        value_at_clients()
    with fcore.execution_context(num_clients=2):
        scalar(value_at_clients(), 3, np.int32)


def test_federated_value_at_clients_counts_once_per_client_when_summed():
    with pytest.raises(fcore.CardinalityError, match=r"num_clients=N"):
        sum_of_value_at_clients()
    with fcore.execution_context(num_clients=4):
        scalar(sum_of_value_at_clients(), 12, np.int32)


def test_federated_eval_at_server_runs_the_function_once():
    scalar(eval_at_server(), 7, np.int32)


def test_federated_eval_at_clients_runs_the_function_at_each_client():
    with fcore.execution_context(num_clients=2):
        result = eval_at_clients()
    assert type(result) is list and len(result) == 2
    for member in result:
        assert member.dtype == np.float32
        np.testing.assert_array_equal(member, [1., 1.])


def test_federated_map_applies_the_function_to_each_client():
    assert map_at_clients([1, 2, 3]) == [2, 3, 4]
    assert map_at_clients([]) == []


def test_federated_map_over_an_all_equal_value_gives_a_list_per_client():
    with fcore.execution_context(num_clients=3):
        result = map_all_equal(4)
    assert type(result) is list
    assert result == [5, 5, 5]


def test_federated_map_over_a_server_value_applies_once():
    scalar(map_at_server(41), 42, np.int32)


def test_federated_map_of_a_python_function_over_a_server_struct():
    result = map_python_function_at_server({"x": 1.5, "y": 2})
    assert result == (2, 3.0)
    assert [type(r) for r in result] == [np.int32, np.float32]


def test_federated_sum_adds_clients():
    scalar(sum_at_clients([1, 2, 3]), 6, np.int32)


def test_federated_mean_of_structs_averages_each_member():
    result = mean_of_structs([{"a": 1., "b": [0., 2.]}, {"a": 3., "b": [4., 6.]}])
    scalar(result.a, 2.0, np.float32)
    assert result.b.dtype == np.float32
    np.testing.assert_array_equal(result.b, [2., 4.])


def test_weighted_federated_mean_of_structs_weights_each_member():
    result = weighted_mean_of_structs([{"a": 1., "b": [0., 2.]}, {"a": 3., "b": [4., 6.]}],
                                      [3., 1.])
    scalar(result.a, 1.5, np.float32)
    np.testing.assert_array_equal(result.b, [1., 3.])


@pytest.mark.filterwarnings("ignore:Casting complex values to real")
def test_federated_mean_of_complex_values_keeps_the_imaginary_part():
    @fcore.federated_computation(FederatedType(np.complex64, CLIENTS))
    def complex_mean(x):
        return fcore.federated_mean(x)

    scalar(complex_mean([1 + 2j, 3 + 4j]), 2 + 3j, np.complex64)


def test_federated_min_and_max_of_ints():
    scalar(minimum([3, -1, 2]), -1, np.int32)
    scalar(maximum([3, -1, 2]), 3, np.int32)


def test_federated_min_and_max_work_element_by_element_on_structs():
    low, high = extremes_of_structs([{"x": 1.5, "y": 7}, {"x": -2.0, "y": 9}])
    assert low == {"x": -2.0, "y": 7}
    assert high == {"x": 1.5, "y": 9}


@pytest.mark.parametrize("computation, uri", [(minimum, "federated_min"),
                                               (maximum, "federated_max")])
def test_federated_min_and_max_of_no_clients_raise_execution_error(computation, uri):
    with pytest.raises(fcore.ExecutionError, match=f"^{uri} of zero clients is undefined"):
        computation([])


@pytest.mark.parametrize("values, expected", [
    ([1.0], 1.0), ([1.0, -2.0], 1.0), ([1.0, -2.0, 3.0], 2.0),
    ([1.0, 2.0, 3.0, -4.0, 5.0], 4.0),
])
def test_federated_aggregate_accumulates_merges_and_reports(values, expected):
    scalar(count_positive(values), expected, np.float32)


def test_federated_secure_sum_adds_values_within_the_bound():
    scalar(secure_sum([1, 10, 3]), 14, np.int32)
    scalar(secure_sum([]), 0, np.int32)


@pytest.mark.parametrize("values, client, value", [([1, 11, 3], 1, 11), ([-1, 2], 0, -1)])
def test_federated_secure_sum_of_a_value_out_of_range_names_the_client(values, client, value):
    with pytest.raises(fcore.ExecutionError) as info:
        secure_sum(values)
    assert str(info.value) == (f"federated_secure_sum: the value {value} of client {client} "
                               f"is outside [0, 10].")


def test_federated_secure_sum_of_structs_bounds_each_member():
    result = secure_sum_of_structs([{"a": 1, "b": np.array([50, 60])},
                                    {"a": 5, "b": np.array([100, 0])}])
    scalar(result.a, 6, np.int32)
    assert result.b.dtype == np.int64
    np.testing.assert_array_equal(result.b, [150, 60])
    with pytest.raises(fcore.ExecutionError, match=r"the value \[50, 101\] of client 1 is "
                                                   r"outside \[0, 100\]"):
        secure_sum_of_structs([{"a": 0, "b": np.array([0, 0])},
                               {"a": 1, "b": np.array([50, 101])}])


@pytest.mark.parametrize("kind", ["reference", "fast"])
def test_a_secure_sum_that_does_not_fit_its_dtype_is_an_error_not_a_wrap(kind):
    @fcore.federated_computation(FederatedType(np.int32, CLIENTS))
    def large_sum(values):
        return fcore.federated_secure_sum(values, 2**31 - 1)

    with fcore.execution_context(kind):
        scalar(large_sum([2**30, 2**30 - 1]), 2**31 - 1, np.int32)
        with pytest.raises(fcore.ExecutionError, match="the sum 2147483648 does not fit int32"):
            large_sum([2**31 - 1, 1])


def test_federated_secure_sum_bitwidth_adds_values_within_the_bitwidth():
    scalar(secure_sum_bitwidth([7, 7, 7]), 21, np.int32)
    scalar(secure_sum_bitwidth([0, 1]), 1, np.int32)


def test_federated_secure_sum_bitwidth_of_a_value_out_of_range_names_the_client():
    with pytest.raises(fcore.ExecutionError) as info:
        secure_sum_bitwidth([7, 8])
    assert str(info.value) == ("federated_secure_sum_bitwidth: the value 8 of client 1 is "
                               "outside [0, 7].")


def test_federated_zip_at_server_gives_an_ordered_dict():
    result = zip_at_server(1, {"x": 0.5, "y": 2})
    assert type(result) is collections.OrderedDict
    assert list(result) == ["a", "b"]
    assert result == {"a": 1, "b": {"x": 0.5, "y": 2}}


def test_federated_zip_at_clients_pairs_each_client_with_the_all_equal_value():
    result = zip_at_clients([1, 2], 0.5)
    assert result == [(1, 0.5), (2, 0.5)]
    assert all(type(member) is tuple for member in result)


@pytest.fixture
def xy_dataset():
    return tf.data.Dataset.from_tensor_slices(collections.OrderedDict(
        x=np.array([1., 2.], np.float32), y=np.array([3, 4], np.int32)))


def test_sequence_map_over_a_list_and_over_a_dataset(xy_dataset):
    assert map_sequence([{"x": 1., "y": 3}, {"x": 2., "y": 4}]) == [3.0, 8.0]
    result = map_sequence(xy_dataset)
    assert type(result) is list
    assert result == [3.0, 8.0]
    assert map_sequence([]) == []


def test_sequence_map_result_is_a_dataset_for_a_tf_computation(xy_dataset):
    scalar(map_then_reduce_in_tf(xy_dataset), 11.0, np.float32)


def test_sequence_reduce_over_a_list_and_over_a_dataset():
    scalar(reduce_sequence([1, 2, 3, 4]), 10, np.int32)
    scalar(reduce_sequence(tf.data.Dataset.range(5)), 10, np.int32)
    scalar(reduce_sequence([]), 0, np.int32)
    scalar(last_element([4, 5]), 5, np.int32)
    scalar(last_element([]), -1, np.int32)


def test_sequence_sum_over_a_list_and_over_a_dataset(xy_dataset):
    assert sum_sequence([{"x": 1., "y": 3}, {"x": 2., "y": 4}]) == {"x": 3.0, "y": 7}
    result = sum_sequence(xy_dataset)
    assert result == {"x": 3.0, "y": 7}
    assert (type(result.x), type(result.y)) == (np.float32, np.int32)
    assert sum_sequence([]) == {"x": 0.0, "y": 0}


# Printing and parsing round trip ---------------------------------------------------------

_COMPUTATIONS = {name: value for name, value in dict(globals()).items()
                 if isinstance(value, fcore.Computation)}


@pytest.mark.parametrize("name", sorted(_COMPUTATIONS))
def test_every_computation_in_this_file_round_trips_through_its_text(name):
    computation = _COMPUTATIONS[name]
    assert fcore.parse_computation(str(computation), computation.leaves()) == computation
