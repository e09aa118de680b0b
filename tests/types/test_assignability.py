"""Assignability and equivalence, and the mismatch error that names the first difference."""

import pytest

from fcore import TypeMismatchError, parse_type


@pytest.mark.parametrize("target, source", [
    ("float32[?]", "float32[3]"),
    ("float32[...]", "float32[3,4]"),
    ("float32[?,784]", "float32[100,784]"),
    ("{float32}@CLIENTS", "float32@CLIENTS"),
    ("<a=int32,b=float32[?]>", "<a=int32,b=float32[2]>"),
    ("<a=int32>", "<int32>"),  # an unnamed element fits any name
    ("float32[?]*", "float32[5]*"),
    ("(float32[3] -> float32[?])", "(float32[?] -> float32[3])"),
    ("{float32[?]}@CLIENTS", "{float32[2]}@CLIENTS"),
    ("T", "T"),
    ("placement", "placement"),
])
def test_assignable(target, source):
    assert parse_type(target).is_assignable_from(parse_type(source))


@pytest.mark.parametrize("target, source", [
    ("float32[3]", "float32[?]"),
    ("float32", "int32"),
    ("float32[3]", "float32[3,1]"),
    ("float32@CLIENTS", "{float32}@CLIENTS"),
    ("float32@SERVER", "{float32}@CLIENTS"),
    ("<a=int32>", "<b=int32>"),
    ("<int32>", "<a=int32>"),  # as in TFF: a named element needs that name in the target
    ("<a=int32>", "<a=int32,b=int32>"),
    ("(float32[?] -> float32)", "(float32[3] -> float32)"),
    ("int32*", "int32"),
    ("int32", "int32@SERVER"),
])
def test_not_assignable(target, source):
    assert not parse_type(target).is_assignable_from(parse_type(source))


def test_equivalence_is_mutual_assignability():
    assert parse_type("<a=float32[3]>").is_equivalent_to(parse_type("<a=float32[3]>"))
    assert not parse_type("float32[?]").is_equivalent_to(parse_type("float32[3]"))
    assert not parse_type("<a=int32>").is_equivalent_to(parse_type("<int32>"))


def test_mismatch_error_names_expected_found_and_path():
    target = parse_type("<a=int32,b=<c=float32,d=int64>>")
    with pytest.raises(TypeMismatchError) as info:
        target.check_assignable_from(parse_type("<a=int32,b=<c=float32,d=int32>>"))
    error = info.value
    assert isinstance(error, TypeError)
    assert error.expected == target
    assert error.path == ".b.d"
    assert str(error) == (
        "Expected value of type <a=int32,b=<c=float32,d=int64>>, found "
        "<a=int32,b=<c=float32,d=int32>>; first difference at .b.d: dtype int32 is not "
        "int64.")


def test_mismatch_error_for_placement_and_names():
    with pytest.raises(TypeMismatchError, match="placed at SERVER, expected CLIENTS"):
        parse_type("{int32}@CLIENTS").check_assignable_from(parse_type("int32@SERVER"))
    with pytest.raises(TypeMismatchError, match=r"at \[1\]: expected name 'b', found name 'c'"):
        parse_type("<a=int32,b=int32>").check_assignable_from(parse_type("<a=int32,c=int32>"))


def test_long_mismatch_shows_formatted_types():
    target = parse_type("<" + ",".join(f"x{i}=float32[{i}]" for i in range(12)) + ">")
    source = parse_type("<" + ",".join(f"x{i}=float32[{i + (i == 7)}]" for i in range(12)) + ">")
    with pytest.raises(TypeMismatchError) as info:
        target.check_assignable_from(source)
    assert "first difference at .x7: shape [8] does not fit [7]" in str(info.value)
    assert "\nExpected:\n  <\n    x0=float32[0]," in str(info.value)
    assert info.value.found is source
