"""Property: every type prints to text that parses back to the same type."""

from hypothesis import given, settings
from hypothesis import strategies as st

from fcore import (CLIENTS, SERVER, FederatedType, FunctionType, SequenceType, StructType,
                   TensorType, parse_type)
from fcore.types.dtypes import DTYPE_NAMES

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_/]{0,8}", fullmatch=True)
shapes = st.one_of(
    st.none(),
    st.lists(st.one_of(st.none(), st.integers(0, 1000)), max_size=4).map(tuple))
tensors = st.builds(TensorType, st.sampled_from(DTYPE_NAMES), shapes)


def structs_of(elements):
    return st.lists(st.tuples(st.one_of(st.none(), names), elements), max_size=4,
                    unique_by=lambda item: item[0] or object()).map(StructType)


# Values a federated member or a sequence element may hold: tensors and structs of them.
plain = st.recursive(tensors, structs_of, max_leaves=8)
sequences = st.builds(SequenceType, plain)
members = st.one_of(plain, sequences, structs_of(st.one_of(plain, sequences)))
federated = st.builds(FederatedType, members, st.sampled_from([SERVER, CLIENTS]), st.booleans())
unplaced = st.one_of(plain, sequences)


def extend(inner):
    return st.one_of(
        structs_of(inner),
        st.builds(FunctionType, st.one_of(st.none(), inner), inner))


types = st.recursive(st.one_of(unplaced, federated), extend, max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(types)
def test_compact_text_round_trips(t):
    assert parse_type(str(t)) == t


@settings(max_examples=200, deadline=None)
@given(types, st.integers(10, 120))
def test_formatted_text_round_trips(t, width):
    assert parse_type(t.formatted(width)) == t


@settings(max_examples=200, deadline=None)
@given(types)
def test_a_type_is_assignable_from_and_equivalent_to_itself(t):
    assert t.is_assignable_from(t)
    assert t.is_equivalent_to(parse_type(str(t)))
