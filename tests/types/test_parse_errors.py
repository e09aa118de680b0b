"""Malformed type text: `TypeParseError` with line, column, a caret and what was expected."""

import pytest

from fcore import TypeParseError, parse_type


def test_parse_error_is_a_value_error_with_position_and_caret():
    with pytest.raises(TypeParseError) as info:
        parse_type("<a=int32,b=>")
    error = info.value
    assert isinstance(error, ValueError)
    assert (error.line, error.column) == (1, 12)
    assert str(error) == (
        "Invalid type text at line 1, column 12: expected one of \"'\", '(', '<', '{', "
        "a name or dtype, found '>'.\n"
        "  <a=int32,b=>\n"
        "             ^")


def test_unexpected_end_of_text_points_past_the_end():
    with pytest.raises(TypeParseError) as info:
        parse_type("<a=int32,")
    assert (info.value.line, info.value.column) == (1, 10)
    assert "found the end of the text" in str(info.value)


def test_error_on_a_later_line_gives_that_line():
    with pytest.raises(TypeParseError) as info:
        parse_type("<\n  a=int32,\n  b=float32[?,x]\n>")
    assert (info.value.line, info.value.column) == (3, 15)
    assert "  b=float32[?,x]\n" in str(info.value)
    assert "expected one of '?', a number, found 'x'" in str(info.value)


@pytest.mark.parametrize("text, message", [
    ("foo", "unknown dtype 'foo'"),
    ("int32@MOON", "Expected a placement (SERVER or CLIENTS), found 'MOON'"),
    ("{int32@SERVER}@CLIENTS", "a federated member cannot be a FederatedType"),
    ("{(int32 -> int32)}@CLIENTS", "a federated member cannot be a FunctionType"),
    ("<a=int32,a=float32>", "duplicate element name 'a'"),
    ("int32**", "a sequence element cannot be a SequenceType"),
    ("(int32 -> )", "found ')'"),
    ("int32 float32", "found 'float32'"),
    ("", "found the end of the text"),
    ("<a=int32>>", "found '>'"),
    ("int32$", "found '$'"),
])
def test_malformed_or_impossible_types_are_reported(text, message):
    with pytest.raises(TypeParseError) as info:
        parse_type(text)
    assert message in str(info.value)
    assert "^" in str(info.value)


def test_deep_input_is_rejected_quickly():
    with pytest.raises(TypeParseError, match="nesting is deeper than 256 levels"):
        parse_type("<" * 100_000 + ">" * 100_000)


def test_long_flat_input_parses():
    text = "<" + ",".join(f"a{i}=float32[{i}]" for i in range(5000)) + ">"
    assert str(parse_type(text)) == text


def test_non_string_input_is_a_type_error():
    with pytest.raises(TypeError, match="found int"):
        parse_type(3)
