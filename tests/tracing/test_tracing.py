"""Tracing Python into federated computations: struct access, returned containers, calls of
other computations, polymorphic computations, keyword arguments, Python functions as mapping
functions, the errors for code that belongs in a tf_computation, per-client execution errors,
client counts, and the print -> parse round trip of every computation built here."""

import collections

import numpy as np
import pytest
import tensorflow as tf

import fcore
from fcore import CLIENTS, SERVER, FederatedType, StructType

Point = collections.namedtuple("Point", ["x", "y"])

NESTED = StructType([("a", StructType([("b", np.int32), ("c", np.float32)])), ("d", np.int32)])
XY = StructType([("x", np.float32), ("y", np.int32)])
NESTED_VALUE = {"a": {"b": 1, "c": 2.0}, "d": 3}

def built(computation):
    """`computation`, once its print -> parse round trip is checked (for computations built
    inside tests; those at module level are checked at the end of the file)."""
    assert_round_trips(computation)
    return computation


def assert_round_trips(computation):
    assert fcore.parse_computation(str(computation), computation.leaves()) == computation


def scalar(result, value, dtype):
    assert type(result) is dtype, (result, type(result))
    assert result == value


# Structs -----------------------------------------------------------------------------------


@fcore.federated_computation(NESTED)
def select_nested(s):
    return s.a.c, s[0][0], s["d"]


@fcore.federated_computation(NESTED)
def unpack_nested(s):
    a, d = s
    b, c = a
    return [c, b, d]


@fcore.federated_computation(NESTED)
def struct_length(s):
    return len(s), len(s.a)


@fcore.federated_computation(FederatedType(XY, CLIENTS))
def select_federated(v):
    return fcore.federated_mean(v.x), fcore.federated_sum(v["y"]), fcore.federated_max(v.y)


@fcore.federated_computation(FederatedType(XY, CLIENTS))
def unpack_federated(v):
    x, y = v
    return fcore.federated_mean(x), fcore.federated_sum(y)


@fcore.federated_computation(FederatedType(XY, SERVER))
def select_at_server(v):
    return v.y


def test_attribute_access_and_indexing_on_nested_structs():
    assert str(select_nested.type_signature) == \
        "(<a=<b=int32,c=float32>,d=int32> -> <float32,int32,int32>)"
    assert str(select_nested) == "(s:<a=<b=int32,c=float32>,d=int32> -> <s.a.c,s[0][0],s.d>)"
    result = select_nested(NESTED_VALUE)
    assert type(result) is tuple
    assert result == (2.0, 1, 3)
    assert [type(r) for r in result] == [np.float32, np.int32, np.int32]


def test_unpacking_a_struct_selects_its_elements_in_order():
    assert str(unpack_nested) == "(s:<a=<b=int32,c=float32>,d=int32> -> <s.a.c,s.a.b,s.d>)"
    result = unpack_nested(NESTED_VALUE)
    assert type(result) is list
    assert result == [2.0, 1, 3]


def test_len_of_a_struct_is_a_python_int_while_tracing():
    assert str(struct_length.type_signature) == \
        "(<a=<b=int32,c=float32>,d=int32> -> <int32,int32>)"
    assert struct_length(NESTED_VALUE) == (2, 2)


def test_attribute_access_on_a_federated_struct_maps_the_selection_once_per_element():
    assert str(select_federated.type_signature) == \
        "({<x=float32,y=int32>}@CLIENTS -> <float32@SERVER,int32@SERVER,int32@SERVER>)"
    text = str(select_federated)
    assert text.count("federated_map(") == 2  # v["y"] and v.y are mapped once
    assert "(_arg:<x=float32,y=int32> -> _arg.x)" in text
    assert select_federated([{"x": 1., "y": 2}, {"x": 3., "y": 4}]) == (2.0, 6, 4)


@fcore.federated_computation(FederatedType(XY, CLIENTS))
def select_by_index(v):
    return fcore.federated_sum(v[1]), fcore.federated_mean(v[0])


def test_indexing_a_federated_struct_maps_the_selection():
    assert str(select_by_index.type_signature) == \
        "({<x=float32,y=int32>}@CLIENTS -> <int32@SERVER,float32@SERVER>)"
    assert "(_arg:<x=float32,y=int32> -> _arg[1])" in str(select_by_index)
    assert select_by_index([{"x": 1., "y": 2}, {"x": 3., "y": 4}]) == (6, 2.0)


def test_unpacking_a_federated_struct_gives_federated_elements():
    assert str(unpack_federated.type_signature) == \
        "({<x=float32,y=int32>}@CLIENTS -> <float32@SERVER,int32@SERVER>)"
    assert unpack_federated([{"x": 1., "y": 2}, {"x": 3., "y": 4}]) == (2.0, 6)


def test_attribute_access_on_a_server_struct_applies_the_selection():
    assert str(select_at_server.type_signature) == "(<x=float32,y=int32>@SERVER -> int32@SERVER)"
    assert "federated_apply(" in str(select_at_server)
    scalar(select_at_server({"x": 1.5, "y": 4}), 4, np.int32)


def test_missing_attribute_of_a_federated_struct_lists_the_valid_ones():
    with pytest.raises(AttributeError, match=r"no such attribute 'z'.*Valid attributes: "
                                             r"\(x, y\)"):
        @fcore.federated_computation(FederatedType(XY, CLIENTS))
        def missing(v):
            return v.z


def test_out_of_range_index_names_the_struct_and_its_length():
    with pytest.raises(IndexError, match=r"Index 2 is out of range for <x=float32,y=int32>, "
                                         r"which has 2 elements"):
        @fcore.federated_computation(XY)
        def too_far(s):
            return s[2]


def test_attribute_of_a_federated_tensor_says_only_structs_have_named_elements():
    with pytest.raises(AttributeError, match=r"v of type \{int32\}@CLIENTS has no attribute "
                                             r"'x': only structs have named elements"):
        @fcore.federated_computation(FederatedType(np.int32, CLIENTS))
        def not_a_struct(v):
            return v.x


def test_unpacking_a_federated_tensor_says_only_structs_can_be_unpacked():
    with pytest.raises(TypeError, match=r"Cannot iterate over v of type \{int32\}@CLIENTS; "
                                        r"only structs can be unpacked"):
        @fcore.federated_computation(FederatedType(np.int32, CLIENTS))
        def unpack_tensor(v):
            a, b = v
            return a


# Returned containers -----------------------------------------------------------------------


@fcore.federated_computation(np.int32, np.float32)
def return_dict(a, b):
    return {"z": a, "a": b}


@fcore.federated_computation(np.int32, np.float32)
def return_ordered_dict(a, b):
    return collections.OrderedDict(z=a, a=b)


@fcore.federated_computation(np.int32, np.float32)
def return_tuple(a, b):
    return (b, a)


@fcore.federated_computation(np.int32, np.float32)
def return_namedtuple(a, b):
    return Point(a, b)


@fcore.federated_computation(np.int32, np.float32)
def return_list(a, b):
    return [a, b]


@fcore.federated_computation(np.int32, np.float32)
def return_nested_containers(a, b):
    return {"b": (a, Point(a, b)), "a": [b, collections.OrderedDict(z=a, y=b)]}


@fcore.federated_computation(FederatedType(np.int32, CLIENTS))
def return_namedtuple_of_server_values(v):
    return Point(fcore.federated_sum(v), fcore.federated_max(v))


def test_returning_a_dict_sorts_its_keys_and_returns_an_ordered_dict():
    assert str(return_dict.type_signature) == "(<a=int32,b=float32> -> <a=float32,z=int32>)"
    result = return_dict(1, 2.0)
    assert type(result) is collections.OrderedDict
    assert list(result.items()) == [("a", 2.0), ("z", 1)]


def test_returning_an_ordered_dict_keeps_its_order():
    assert str(return_ordered_dict.type_signature) == \
        "(<a=int32,b=float32> -> <z=int32,a=float32>)"
    result = return_ordered_dict(1, 2.0)
    assert type(result) is collections.OrderedDict
    assert list(result.items()) == [("z", 1), ("a", 2.0)]


def test_returning_a_tuple_returns_a_tuple():
    assert str(return_tuple.type_signature) == "(<a=int32,b=float32> -> <float32,int32>)"
    result = return_tuple(1, 2.0)
    assert type(result) is tuple
    assert result == (2.0, 1)


def test_returning_a_namedtuple_names_the_elements_and_returns_the_namedtuple():
    assert str(return_namedtuple.type_signature) == "(<a=int32,b=float32> -> <x=int32,y=float32>)"
    result = return_namedtuple(1, 2.0)
    assert type(result) is Point
    assert result == Point(1, 2.0)


def test_returning_a_list_returns_a_list():
    assert str(return_list.type_signature) == "(<a=int32,b=float32> -> <int32,float32>)"
    result = return_list(1, 2.0)
    assert type(result) is list
    assert result == [1, 2.0]


def test_nested_returned_containers_are_kept_at_every_level():
    assert str(return_nested_containers.type_signature) == (
        "(<a=int32,b=float32> -> "
        "<a=<float32,<z=int32,y=float32>>,b=<int32,<x=int32,y=float32>>>)")
    result = return_nested_containers(1, 2.0)
    assert type(result) is collections.OrderedDict and list(result) == ["a", "b"]
    assert type(result["a"]) is list and type(result["a"][1]) is collections.OrderedDict
    assert list(result["a"][1]) == ["z", "y"]
    assert type(result["b"]) is tuple and type(result["b"][1]) is Point
    assert result == {"a": [2.0, {"z": 1, "y": 2.0}], "b": (1, Point(1, 2.0))}


def test_returning_a_namedtuple_of_server_values():
    assert str(return_namedtuple_of_server_values.type_signature) == \
        "({int32}@CLIENTS -> <x=int32@SERVER,y=int32@SERVER>)"
    assert return_namedtuple_of_server_values([1, 2]) == Point(3, 2)
    assert type(return_namedtuple_of_server_values([1, 2])) is Point


# Calling computations inside computations --------------------------------------------------


@fcore.tf_computation(np.float32)
def halve(x):
    return x / 2


@fcore.tf_computation(np.int32, np.int32)
def subtract(a, b):
    return a - b


@fcore.federated_computation(FederatedType(np.float32, CLIENTS))
def mean_of_halves(v):
    return fcore.federated_mean(fcore.federated_map(halve, v))


@fcore.federated_computation(FederatedType(np.float32, CLIENTS))
def halve_the_mean_of_halves_at_clients(v):
    return fcore.federated_map(halve, fcore.federated_broadcast(mean_of_halves(v)))


@fcore.federated_computation(np.float32)
def quarter(x):
    return halve(halve(x))


@fcore.federated_computation(np.int32, np.int32)
def swapped_subtract(a, b):
    return subtract(b=a, a=b)


@fcore.federated_computation(np.int32, np.int32)
def call_with_keywords_inside(a, b):
    return swapped_subtract(b=a, a=b)


def test_calling_a_federated_computation_inside_another():
    assert str(halve_the_mean_of_halves_at_clients.type_signature) == \
        "({float32}@CLIENTS -> {float32}@CLIENTS)"
    assert halve_the_mean_of_halves_at_clients([2., 6.]) == [1.0, 1.0]
    assert list(halve_the_mean_of_halves_at_clients.leaves()) == ["halve"]


def test_calling_a_tf_computation_on_an_unplaced_value_inside_a_federated_computation():
    assert str(quarter) == "(x:float32 -> (let _var1=@halve(x) in @halve(_var1)))"
    scalar(quarter(8.0), 2.0, np.float32)


def test_keyword_arguments_fill_parameters_by_name():
    assert str(swapped_subtract) == "(arg:<a=int32,b=int32> -> @subtract(<a=arg.b,b=arg.a>))"
    scalar(swapped_subtract(1, 10), 9, np.int32)
    scalar(swapped_subtract(b=1, a=10), -9, np.int32)
    scalar(swapped_subtract(1, b=10), 9, np.int32)
    scalar(call_with_keywords_inside(1, 10), -9, np.int32)


def test_unexpected_keyword_argument_names_the_parameter():
    with pytest.raises(TypeError, match=r"swapped_subtract got an unexpected keyword argument "
                                        r"'c'; its parameter is <a=int32,b=int32>"):
        swapped_subtract(1, c=2)


def test_keyword_argument_given_twice_is_rejected():
    with pytest.raises(TypeError, match="swapped_subtract got two values for the argument 'a'"):
        swapped_subtract(1, a=2)


def test_missing_argument_names_it():
    with pytest.raises(TypeError, match=r"swapped_subtract is missing the argument 'b'"):
        swapped_subtract(a=1)


# Polymorphic computations ------------------------------------------------------------------


@fcore.federated_computation
def poly_swap(x, y):
    return (y, x)


@fcore.tf_computation
def poly_double(x):
    return x * 2


@fcore.federated_computation
def poly_double_twice(x):
    return poly_double(poly_double(x))


@fcore.tf_computation
def poly_minus(x, y):
    return x - y


@fcore.federated_computation(FederatedType(np.float32, CLIENTS))
def map_polymorphic_tf(v):
    return fcore.federated_map(poly_double, v)


@fcore.federated_computation(FederatedType(np.int32, SERVER))
def map_polymorphic_federated(v):
    return fcore.federated_map(poly_double_twice, v)


def test_polymorphic_computations_have_no_type_signature():
    for poly in (poly_swap, poly_double):
        assert isinstance(poly, fcore.PolymorphicComputation)
        with pytest.raises(TypeError, match=f"{poly.name} is polymorphic"):
            poly.type_signature
        assert not hasattr(poly, "type_signature")  # an AttributeError too, as in TFF


def test_the_functional_form_takes_the_function_then_the_types():
    add = fcore.tf_computation(lambda x, y: x + y, np.int32, np.int32)
    assert str(add.type_signature) == "(<x=int32,y=int32> -> int32)"
    assert add(2, 3) == 5
    total = fcore.federated_computation(lambda v: fcore.federated_sum(v),
                                        fcore.FederatedType(np.int32, fcore.CLIENTS))
    assert str(total.type_signature) == "({int32}@CLIENTS -> int32@SERVER)"


def test_numpy_scalars_keep_their_dtype():
    constant = fcore.federated_computation(lambda: np.float64(0.1))
    assert str(constant.type_signature) == "( -> float64)"
    assert constant() == np.float64(0.1) and isinstance(constant(), np.float64)
    placed = fcore.federated_computation(
        lambda: fcore.federated_value(np.float64(0.25), fcore.SERVER))
    assert str(placed.type_signature) == "( -> float64@SERVER)"


def test_a_nested_function_sees_the_enclosing_names_it_uses():
    @fcore.tf_computation(np.int32, np.int32)
    def add(a, b):
        return a + b

    # The inner function's parameter and locals must not shadow the outer `arg` and `_var1`.
    @fcore.federated_computation(fcore.FederatedType(np.int32, fcore.SERVER), np.int32)
    def outer(x, offset):
        shifted = add(offset, offset)  # bound to a local of the outer computation

        def inner(a, b):
            return add(add(a, b), shifted)
        return fcore.federated_map(inner, fcore.federated_zip((x, x)))

    assert outer(3, 1) == 3 + 3 + 2
    assert fcore.parse_computation(str(outer), outer.leaves()) == outer


def test_polymorphic_federated_computation_is_instantiated_per_argument_type():
    result = poly_swap(1, 2.0)
    assert result == (2.0, 1) and [type(r) for r in result] == [np.float32, np.int32]
    assert poly_swap(np.float32(1), "a") == (b"a", 1.0)
    instance = poly_swap.instantiate(StructType([("x", np.int32), ("y", np.float32)]))
    assert str(instance.type_signature) == "(<x=int32,y=float32> -> <float32,int32>)"
    assert_round_trips(instance)


def test_polymorphic_instances_are_cached_per_type():
    first = poly_double.instantiate(np.int32)
    assert poly_double.instantiate(fcore.TensorType(np.int32)) is first
    scalar(poly_double(3), 6, np.int32)
    scalar(poly_double(3), 6, np.int32)
    scalar(poly_double(np.float32(1.5)), 3.0, np.float32)
    assert str(poly_double.instantiate(np.float32).type_signature) == "(float32 -> float32)"
    assert poly_double.instantiate(np.int32) is first


def test_polymorphic_federated_computation_calls_polymorphic_tf_inside():
    scalar(poly_double_twice(3), 12, np.int32)
    assert str(poly_double_twice.instantiate(np.int32)) == \
        "(x:int32 -> (let _var1=@poly_double(x) in @poly_double(_var1)))"


def test_polymorphic_tf_computation_is_instantiated_at_the_member_type_in_federated_map():
    assert str(map_polymorphic_tf.type_signature) == "({float32}@CLIENTS -> {float32}@CLIENTS)"
    assert map_polymorphic_tf([1., 2.5]) == [2.0, 5.0]


def test_polymorphic_federated_computation_as_a_mapping_function_at_server():
    assert str(map_polymorphic_federated.type_signature) == "(int32@SERVER -> int32@SERVER)"
    scalar(map_polymorphic_federated(5), 20, np.int32)


def test_polymorphic_computation_with_positional_and_keyword_arguments_in_order():
    assert poly_swap(1, y=2.0) == (2.0, 1)
    scalar(poly_minus(5, y=1), 4, np.int32)


@pytest.mark.parametrize("call, expected", [
    (lambda: poly_minus(y=1, x=5), 4),
    (lambda: poly_swap(y=1, x=2.0), (1, 2.0)),
], ids=["tf", "federated"])
def test_polymorphic_computation_binds_keyword_arguments_by_name(call, expected):
    assert call() == expected


def test_polymorphic_computation_without_an_argument_type_cannot_be_used_as_a_value():
    with pytest.raises(TypeError, match="The polymorphic computation poly_double needs an "
                                        "argument type here"):
        @fcore.federated_computation
        def return_polymorphic():
            return poly_double


# Lambdas and no-argument computations ------------------------------------------------------


def test_hello_world_lambda_computation():
    assert built(fcore.federated_computation(lambda: "Hello, World!"))() == "Hello, World!"


def test_hello_world_lambda_has_a_str_result_type_and_prints_as_text():
    hello = built(fcore.federated_computation(lambda: "Hello, World!"))
    assert str(hello.type_signature) == "( -> str)"
    assert str(hello) == '( -> "Hello, World!")'


@fcore.federated_computation
def server_constant():
    return fcore.federated_value(np.float32(1.5), SERVER)


@fcore.tf_computation
def tf_constant_struct():
    return collections.OrderedDict(a=tf.constant(1), b=tf.constant([1.0, 2.0]))


def test_no_argument_federated_computation_is_called_with_no_arguments():
    assert str(server_constant.type_signature) == "( -> float32@SERVER)"
    scalar(server_constant(), 1.5, np.float32)
    with pytest.raises(TypeError, match="server_constant takes no arguments, found 1"):
        server_constant(1)


def test_no_argument_tf_computation_returning_an_ordered_dict():
    assert str(tf_constant_struct.type_signature) == "( -> <a=int32,b=float32[2]>)"
    result = tf_constant_struct()
    assert type(result) is collections.OrderedDict
    scalar(result["a"], 1, np.int32)
    np.testing.assert_array_equal(result["b"], [1.0, 2.0])


# Python functions as mapping functions -----------------------------------------------------


@fcore.federated_computation(FederatedType(np.int32, CLIENTS))
def map_identity_lambda(v):
    return fcore.federated_map(lambda x: x, v)


def _halve_twice(x):
    return halve(halve(x))


@fcore.federated_computation(FederatedType(np.float32, CLIENTS))
def map_python_function(v):
    return fcore.federated_map(_halve_twice, v)


@fcore.federated_computation(FederatedType(XY, CLIENTS))
def map_lambda_over_structs(v):
    return fcore.federated_map(lambda e: (e.y, e.x), v)


@fcore.federated_computation(FederatedType(np.float32, CLIENTS, all_equal=True))
def map_python_function_all_equal(v):
    return fcore.federated_map(_halve_twice, v)


def test_python_lambda_as_federated_map_function_is_traced_at_the_member_type():
    assert str(map_identity_lambda) == \
        "(v:{int32}@CLIENTS -> federated_map(<(x:int32 -> x),v>))"
    assert map_identity_lambda([1, 2]) == [1, 2]


def test_python_function_calling_tf_computations_as_federated_map_function():
    assert str(map_python_function.type_signature) == "({float32}@CLIENTS -> {float32}@CLIENTS)"
    assert map_python_function([4., 8.]) == [1.0, 2.0]


def test_python_lambda_restructuring_each_client_struct():
    assert str(map_lambda_over_structs.type_signature) == \
        "({<x=float32,y=int32>}@CLIENTS -> {<int32,float32>}@CLIENTS)"
    assert map_lambda_over_structs([{"x": 1.5, "y": 2}]) == [(2, 1.5)]


def test_python_function_over_an_all_equal_value():
    with fcore.execution_context(num_clients=2):
        assert map_python_function_all_equal(8.0) == [2.0, 2.0]


# Code that belongs in a tf_computation -----------------------------------------------------

_MOVE = "Move this code into an @fcore.tf_computation and apply it with fcore.federated_map"


@pytest.mark.parametrize("body, what", [
    (lambda v: v + 1, "The operator +"),
    (lambda v: 1 - v, "The operator -"),
    (lambda v: v * v, "The operator *"),
    (lambda v: -v, "The operator unary -"),
    (lambda v: v < 1, "The operator <"),
    (lambda v: tf.add(v, 1), "A TensorFlow operation"),
    (lambda v: tf.reduce_sum(v), "A TensorFlow operation"),
    (lambda v: np.add(v, 1), "A NumPy operation"),
    (lambda v: v if v else v, "Python control flow (a truth test)"),
], ids=["add", "rsub", "mul", "neg", "lt", "tf_add", "tf_reduce_sum", "np_add", "if"])
def test_python_or_tf_code_on_a_federated_value_says_to_use_a_tf_computation(body, what):
    with pytest.raises(TypeError) as info:
        fcore.federated_computation(FederatedType(np.int32, CLIENTS))(body)
    message = str(info.value)
    assert message.startswith(f"{what} is not allowed on the federated value v of type "
                              f"{{int32}}@CLIENTS inside a federated_computation")
    assert _MOVE in message
    assert "(in federated computation 'lambda', " in message
    assert "test_tracing.py:" in message.splitlines()[-1]


def test_tf_computation_failing_at_definition_names_the_user_s_line():
    with pytest.raises(ValueError) as info:
        @fcore.tf_computation(np.int32)
        def slice_scalar(x):
            return x[3]  # <- slice-scalar
    location = str(info.value).splitlines()[-1]
    assert location.startswith("  (in TF computation 'slice_scalar', ")
    with open(__file__, encoding="utf-8") as source:
        line = next(n for n, text in enumerate(source, 1) if text.rstrip().endswith(
            "# <- slice-scalar"))
    assert location.endswith(f"test_tracing.py:{line})")


def test_python_arithmetic_inside_a_mapped_lambda_says_to_use_a_tf_computation():
    with pytest.raises(TypeError) as info:
        @fcore.federated_computation(FederatedType(np.int32, CLIENTS))
        def map_arithmetic(v):
            return fcore.federated_map(lambda x: x + 1, v)
    assert _MOVE in str(info.value)


def test_python_arithmetic_on_an_unplaced_value_does_not_call_it_federated():
    with pytest.raises(TypeError) as info:
        fcore.federated_computation(np.int32)(lambda v: v * 2)
    assert "federated value" not in str(info.value).splitlines()[0]
    assert _MOVE.split(" and ")[0] in str(info.value)


# Execution errors and client counts ---------------------------------------------------------


@fcore.tf_computation(np.int32)
def check_positive(x):
    tf.debugging.assert_positive(x, message="must be positive")
    return x


@fcore.federated_computation(FederatedType(np.int32, CLIENTS))
def map_check_positive(v):
    return fcore.federated_map(check_positive, v)


@fcore.federated_computation(FederatedType(np.int32, SERVER))
def apply_check_positive(v):
    return fcore.federated_map(check_positive, v)


@fcore.federated_computation(FederatedType(np.int32, CLIENTS), FederatedType(np.int32, CLIENTS))
def two_client_sums(a, b):
    return fcore.federated_sum(a), fcore.federated_sum(b)


@fcore.federated_computation(FederatedType(XY, CLIENTS), FederatedType(np.float32, CLIENTS))
def client_struct_and_weights(v, w):
    return fcore.federated_mean(v.x, w)


def test_failing_tf_leaf_in_federated_map_names_the_computation_and_the_client():
    assert map_check_positive([1, 2]) == [1, 2]
    with pytest.raises(fcore.ExecutionError) as info:
        map_check_positive([1, 2, -3])
    message = str(info.value)
    assert message.startswith("TF computation 'check_positive' failed on client 2 (in "
                              "'map_check_positive'): InvalidArgumentError")
    assert "must be positive" in message


def test_failing_tf_leaf_at_server_names_the_computation_without_a_client():
    with pytest.raises(fcore.ExecutionError) as info:
        apply_check_positive(-1)
    assert str(info.value).startswith("TF computation 'check_positive' failed (in "
                                      "'apply_check_positive'): InvalidArgumentError")


def test_client_arguments_with_different_numbers_of_clients_are_rejected():
    with pytest.raises(fcore.TypeMismatchError) as info:
        two_client_sums([1, 2], [1, 2, 3])
    assert str(info.value).startswith(
        "Calling two_client_sums: client-placed arguments have different numbers of clients: "
        "2 at .a and 3 at .b")
    assert (info.value.expected, info.value.found, info.value.path) == (2, 3, ".b")


def test_context_num_clients_disagreeing_with_the_arguments_is_rejected():
    with fcore.execution_context(num_clients=3):
        with pytest.raises(fcore.TypeMismatchError) as info:
            two_client_sums([1, 2], [3, 4])
        assert two_client_sums([1, 2, 3], [1, 2, 4]) == (6, 7)
    assert str(info.value) == ("Calling two_client_sums: the execution context has "
                               "num_clients=3, but the client-placed arguments have 2 clients.")
    assert (info.value.expected, info.value.found) == (3, 2)


def test_client_counts_are_compared_inside_structs_too():
    with pytest.raises(fcore.TypeMismatchError, match=r"1 at \.w"):
        client_struct_and_weights([{"x": 1., "y": 1}, {"x": 3., "y": 1}], [1.])
    scalar(client_struct_and_weights([{"x": 1., "y": 1}, {"x": 3., "y": 1}], [1., 3.]), 2.5,
           np.float32)


# Printing and parsing round trip ---------------------------------------------------------

_COMPUTATIONS = {name: value for name, value in dict(globals()).items()
                 if isinstance(value, fcore.Computation)}
_POLYMORPHIC = {name: value for name, value in dict(globals()).items()
                if isinstance(value, fcore.PolymorphicComputation)}


@pytest.mark.parametrize("name", sorted(_COMPUTATIONS))
def test_every_computation_in_this_file_round_trips_through_its_text(name):
    assert_round_trips(_COMPUTATIONS[name])


@pytest.mark.parametrize("name", sorted(_POLYMORPHIC))
def test_every_instance_of_a_polymorphic_computation_round_trips(name):
    poly = _POLYMORPHIC[name]
    two = StructType([("x", np.int32), ("y", np.int32)])
    instances = [poly.instantiate(two if name in ("poly_swap", "poly_minus") else np.int32)]
    instances += poly._instances.values()
    for instance in instances:
        assert_round_trips(instance)
