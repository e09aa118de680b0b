"""Language tests: programs written as text in `programs/*.fc`, each run by this one driver.

A program file starts with `#` lines, then the program text (everything after the header, up
to the end of the file). Header lines are free text (a description) or directives
`# key: value` with one of these keys (a near miss such as `# cal:` is an error):

    # type: (<T> -> <U>)            the exact `str(comp.type_signature)`
    # prints: (x:int32 -> x)        optional: the exact one-line text, `comp.to_text(False)`
    # num_clients: 3                calls after this line run inside
                                    `fcore.execution_context(num_clients=3)`; `none` ends that
    # call: (ARG, ...) => RESULT    `comp(*ARGS)` must return RESULT
    # raises: (ARG, ...) => Name    `comp(*ARGS)` must raise `fcore.Name` (or builtin Name);
    # raises: (ARG, ...) => Name: text        ... with `text` in its message
    # parse-error: LINE:COL         parsing must fail with `fcore.TypeParseError` at LINE:COL
    # parse-error: LINE:COL Name    ... with `fcore.Name` (e.g. ComputationTypeError)
    # message: text                 with a parse-error: `text` is in the error message
    # xfail: reason                 the file exposes a known fcore bug (strict xfail)

LINE:COL counts from the first line of the program text, as `parse_computation` reports it.
ARGS and RESULT are Python literals (tuples, lists, dicts, str, bytes, numbers, True/False)
plus: `nan`, `inf`; the names of the computations in `leaves.ENV` (e.g. `add_one`, passed
as function-typed arguments); `int8(5)`..`float64(1.5)` for NumPy scalars; `array([..],
'float32')` for NumPy arrays; `dataset([..], 'int32')` for a `tf.data.Dataset`. In a
RESULT, `...` matches anything (a function, say).

Results are compared leaf by leaf: a float within a few ulps of the result's dtype (`nan`
matches `nan`), ints and bools exactly, and the Python kind is checked too: a NumPy
float/int/bool scalar for a float/int/bool, a list for a list (or a NumPy array of that
shape), a tuple for a tuple or an `fcore.Struct` that is not all named, a dict for an
`fcore.Struct` or `OrderedDict` with the same names in the same order, `str` and `bytes`
exactly.

Every program that parses is also printed and read back: `str(c)`, the one-line and the
formatted text each satisfy `parse_computation(text, c.leaves()) == c`, and printing the
parsed computation gives `str(c)` again. Every intrinsic must appear in some passing
program.
"""

from __future__ import annotations

import ast
import builtins
import collections.abc
import dataclasses
import difflib
import importlib.util
import math
import pathlib
import re
import sys

import numpy as np
import pytest

import fcore
from fcore.intrinsics import definitions

HERE = pathlib.Path(__file__).parent
PROGRAMS = sorted((HERE / "programs").glob("*.fc"))
KEYS = ("type", "prints", "num_clients", "call", "raises", "parse-error", "message", "xfail")
_DIRECTIVE = re.compile(r"#\s*([a-z][a-z_-]*)\s*:\s?(.*)$")


def _load_leaves():
    name = "fcore_lang_test_leaves"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE / "leaves.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


# Reading program files ---------------------------------------------------------------------

@dataclasses.dataclass
class Check:
    kind: str          # "call" or "raises"
    line: int          # line in the file, for messages
    arguments: str
    expected: str
    num_clients: int | None


@dataclasses.dataclass
class Program:
    path: pathlib.Path
    text: str = ""
    text_line: int = 1            # file line of the program text's first line
    description: list = dataclasses.field(default_factory=list)
    type: tuple | None = None     # (line, text)
    prints: tuple | None = None
    checks: list = dataclasses.field(default_factory=list)
    parse_error: tuple | None = None  # (line in file, LINE, COL, exception class)
    messages: list = dataclasses.field(default_factory=list)  # (line in file, text)
    xfail: str | None = None

    def where(self, line=None):
        name = self.path.relative_to(HERE).as_posix()
        return f"{name}:{line}" if line else name


class FormatError(Exception):
    pass


def read_program(path) -> Program:
    program = Program(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    num_clients = None
    index = 0
    for index, raw in enumerate(lines):
        line_no = index + 1
        line = raw.strip()
        if not line:
            continue
        if not line.startswith("#"):
            break
        match = _DIRECTIVE.match(line)
        if match is None:
            program.description.append(line.lstrip("#").strip())
            continue
        key, value = match.group(1), match.group(2).strip()
        if key not in KEYS:
            typo = difflib.get_close_matches(key, KEYS, n=1, cutoff=0.75)
            if typo:
                raise FormatError(f"{program.where(line_no)}: unknown directive {key!r}; "
                                  f"did you mean {typo[0]!r}?")
            program.description.append(line.lstrip("#").strip())
            continue
        if key == "type":
            program.type = (line_no, value)
        elif key == "prints":
            program.prints = (line_no, value)
        elif key == "num_clients":
            num_clients = None if value == "none" else int(value)
        elif key in ("call", "raises"):
            if " => " not in value:
                raise FormatError(f"{program.where(line_no)}: write `# {key}: ARGS => "
                                  f"{'RESULT' if key == 'call' else 'ErrorName'}`")
            arguments, expected = value.split(" => ", 1)
            program.checks.append(Check(key, line_no, arguments.strip(), expected.strip(),
                                        num_clients))
        elif key == "parse-error":
            position, _, name = value.partition(" ")
            row, _, column = position.partition(":")
            program.parse_error = (line_no, int(row), int(column),
                                   _exception(name.strip() or "TypeParseError",
                                              program.where(line_no)))
        elif key == "message":
            program.messages.append((line_no, value))
        elif key == "xfail":
            program.xfail = value
    else:
        index = len(lines)
    body = lines[index:]
    program.text_line = index + 1
    program.text = "\n".join(body).strip("\n")
    if not program.text.strip():
        raise FormatError(f"{program.where()}: no program text after the header")
    if program.parse_error is None and program.type is None:
        raise FormatError(f"{program.where()}: give `# type:` (or `# parse-error:`)")
    if program.parse_error is not None and (program.type or program.checks or program.prints):
        raise FormatError(f"{program.where()}: a parse-error program has no type, calls or "
                          f"prints")
    if program.messages and program.parse_error is None:
        raise FormatError(f"{program.where()}: `# message:` goes with `# parse-error:`")
    return program


def _exception(name, where):
    cls = getattr(fcore, name, None) or getattr(builtins, name, None)
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        raise FormatError(f"{where}: {name!r} is not an fcore or builtin exception class")
    return cls


def _xfail_reason(path):
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _DIRECTIVE.match(line.strip())
        if match and match.group(1) == "xfail":
            return match.group(2).strip()
        if line.strip() and not line.strip().startswith("#"):
            return None
    return None


# Python values in directives ---------------------------------------------------------------

_DTYPE_NAMES = ("bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                "uint64", "float16", "float32", "float64")


def _dataset(values, dtype=None):
    import tensorflow as tf
    array = np.asarray(values, dtype=dtype)
    return tf.data.Dataset.from_tensor_slices(array)


def value_of(text, where):
    """Evaluates a directive's Python value: literals plus the few names documented above."""
    leaves = _load_leaves()
    names = {"nan": math.nan, "inf": math.inf, **leaves.ENV}
    calls = {"array": lambda values, dtype=None: np.asarray(values, dtype=dtype),
             "dataset": _dataset,
             **{name.rstrip("_"): getattr(np, name) for name in _DTYPE_NAMES}}

    def evaluate(node):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Tuple):
            return tuple(evaluate(e) for e in node.elts)
        if isinstance(node, ast.List):
            return [evaluate(e) for e in node.elts]
        if isinstance(node, ast.Dict):
            return {evaluate(k): evaluate(v) for k, v in zip(node.keys, node.values)}
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = evaluate(node.operand)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            return evaluate(node.left) ** evaluate(node.right)
        if isinstance(node, ast.Name) and node.id in names:
            return names[node.id]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id in calls and not node.keywords:
            return calls[node.func.id](*[evaluate(a) for a in node.args])
        raise FormatError(f"{where}: cannot evaluate {ast.unparse(node)!r} in {text!r}")

    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as e:
        raise FormatError(f"{where}: not a Python value: {text!r} ({e.msg})") from None
    return evaluate(tree.body)


# Comparing results -------------------------------------------------------------------------

def difference(actual, expected, path=""):
    """None if `actual` matches `expected`, else what differs first (with its path)."""
    here = path or "the result"
    if expected is Ellipsis:  # `...`: not compared (a function, say)
        return None
    if isinstance(expected, dict):
        if isinstance(actual, fcore.Struct):
            pairs = list(actual.items())
        elif isinstance(actual, collections.abc.Mapping):
            pairs = list(actual.items())
        else:
            return f"{here}: expected a struct with names {list(expected)}, found {actual!r}"
        names = [name for name, _ in pairs]
        if names != list(expected):
            return f"{here}: expected names {list(expected)}, found {names} in {actual!r}"
        for name, value in pairs:
            found = difference(value, expected[name], f"{path}.{name}")
            if found:
                return found
        return None
    if isinstance(expected, tuple):
        if not isinstance(actual, (tuple, fcore.Struct)):
            return f"{here}: expected a tuple or struct {expected!r}, found {actual!r}"
        if isinstance(actual, fcore.Struct) and len(actual) and None not in actual.names():
            return f"{here}: expected {expected!r}, found a named struct (write a dict): " \
                   f"{actual!r}"
        return _elements(list(actual), list(expected), path, actual)
    if isinstance(expected, list):
        if isinstance(actual, np.ndarray):
            return _array_difference(actual, expected, here)
        if not isinstance(actual, list):
            return f"{here}: expected a list {expected!r}, found {actual!r}"
        return _elements(actual, expected, path, actual)
    if isinstance(expected, (str, bytes)):
        if type(actual) is not type(expected) or actual != expected:
            return f"{here}: expected {expected!r}, found {actual!r}"
        return None
    if isinstance(expected, bool):
        if not isinstance(actual, np.bool_) or bool(actual) != expected:
            return f"{here}: expected {expected!r} (a NumPy bool), found {actual!r}"
        return None
    if isinstance(expected, int):
        if not isinstance(actual, np.integer) or int(actual) != expected:
            return f"{here}: expected {expected!r} (a NumPy integer), found {actual!r}"
        return None
    if isinstance(expected, float):
        if not isinstance(actual, np.floating) or not _close(actual, expected):
            return f"{here}: expected {expected!r} (a NumPy float), found {actual!r}"
        return None
    raise FormatError(f"cannot compare with an expected {type(expected).__name__}")


def _elements(actual, expected, path, whole):
    if len(actual) != len(expected):
        return (f"{path or 'the result'}: expected {len(expected)} elements, found "
                f"{len(actual)}: {whole!r}")
    for index, (a, e) in enumerate(zip(actual, expected)):
        found = difference(a, e, f"{path}[{index}]")
        if found:
            return found
    return None


def _array_difference(actual, expected, here):
    wanted = np.asarray(expected)
    if wanted.shape != actual.shape:
        return f"{here}: expected shape {wanted.shape} {expected!r}, found {actual!r}"
    if wanted.size:
        kind = {"f": "fc", "c": "fc", "i": "iu", "u": "iu", "b": "b"}.get(actual.dtype.kind)
        if kind is None or wanted.dtype.kind not in kind:
            return f"{here}: expected {expected!r}, found an array of {actual.dtype}: {actual!r}"
    if actual.dtype.kind in "fc":
        ok = all(_close(a, e) for a, e in zip(actual.flat, wanted.flat))
    else:
        ok = bool(np.all(actual == wanted))
    return None if ok else f"{here}: expected {expected!r}, found {actual!r}"


def _close(actual, expected):
    if math.isnan(expected):
        return bool(np.isnan(actual))
    eps = float(np.finfo(np.asarray(actual).dtype).eps)
    return bool(np.isclose(float(actual), expected, rtol=8 * eps, atol=8 * eps))


# Running a program -------------------------------------------------------------------------

def _parse(text):
    return fcore.parse_computation(text, _load_leaves().ENV)


def _one_line(error):
    return f"{type(error).__name__}: {error}".replace("\n", "\n      ")


def _run_negative(program, failures):
    line_no, row, column, cls = program.parse_error
    where = program.where(line_no)
    try:
        comp = _parse(program.text)
    except Exception as e:  # noqa: BLE001 - any exception is reported, expected or not
        if not isinstance(e, cls):
            failures.append(f"{where}: parse-error: expected {cls.__name__}, got "
                            f"{_one_line(e)}")
            return
        found = (getattr(e, "line", None), getattr(e, "column", None))
        if found != (row, column):
            failures.append(f"{where}: parse-error: expected position {row}:{column}, got "
                            f"{found[0]}:{found[1]} (file line {program.text_line + row - 1})"
                            f"\n      {_one_line(e)}")
        for message_line, message in program.messages:
            if message not in str(e):
                failures.append(f"{program.where(message_line)}: message: {message!r} is not "
                                f"in the error:\n      {_one_line(e)}")
        return
    failures.append(f"{where}: parse-error: expected {cls.__name__} at {row}:{column}, but "
                    f"the text parsed: {comp}")


def _round_trip(program, comp, failures):
    """`str(c)`, the one-line and the formatted text all parse back to `c`, and printing
    the parsed computation gives the same text again."""
    where = program.where()
    try:
        leaves = comp.leaves()
        texts = {"str(c)": str(comp), "one-line text": comp.to_text(formatted=False),
                 "formatted text": comp.to_text(formatted=True)}
    except Exception as e:  # noqa: BLE001
        failures.append(f"{where}: round trip: printing failed: {_one_line(e)}")
        return
    for form, text in texts.items():
        try:
            again = fcore.parse_computation(text, leaves)
        except Exception as e:  # noqa: BLE001
            failures.append(f"{where}: round trip: the {form} does not parse back:\n"
                            f"      {text}\n      {_one_line(e)}")
            continue
        if again != comp:
            failures.append(f"{where}: round trip: the {form} parses to another "
                            f"computation:\n      {text}\n      {again}")
        elif form == "str(c)" and str(again) != text:
            failures.append(f"{where}: round trip: printing again differs:\n      {text}\n"
                            f"      {again}")


def _call(comp, arguments, num_clients, executor):
    kind, options = executor if isinstance(executor, tuple) else (executor, {})
    with fcore.execution_context(kind, num_clients=num_clients, **options):
        return comp(*arguments)


def _run_check(program, comp, check, failures, executor):
    where = f"{program.where(check.line)}: {check.kind}: {check.arguments} => {check.expected}"
    arguments = value_of(check.arguments, where)
    if not isinstance(arguments, tuple):
        raise FormatError(f"{where}: the arguments must be a tuple, e.g. `(1,)` or `()`")
    if check.kind == "call":
        expected = value_of(check.expected, where)
        try:
            result = _call(comp, arguments, check.num_clients, executor)
        except Exception as e:  # noqa: BLE001
            failures.append(f"{where}\n      raised {_one_line(e)}")
            return
        found = difference(result, expected)
        if found:
            failures.append(f"{where}\n      {found}")
        return
    name, _, message = check.expected.partition(":")
    cls = _exception(name.strip(), where)
    message = message.strip()
    try:
        result = _call(comp, arguments, check.num_clients, executor)
    except Exception as e:  # noqa: BLE001
        if not isinstance(e, cls):
            failures.append(f"{where}\n      raised {_one_line(e)}")
        elif message not in str(e):
            failures.append(f"{where}\n      the message lacks {message!r}: {_one_line(e)}")
        return
    failures.append(f"{where}\n      returned {result!r} instead of raising")


def run_program(program, executor="reference"):
    failures = []
    if program.parse_error is not None:
        _run_negative(program, failures)
        return failures
    try:
        comp = _parse(program.text)
    except Exception as e:  # noqa: BLE001
        return [f"{program.where(program.text_line)}: the program does not parse:\n      "
                f"{_one_line(e)}"]
    line_no, expected_type = program.type
    if str(comp.type_signature) != expected_type:
        failures.append(f"{program.where(line_no)}: type: expected {expected_type}, found "
                        f"{comp.type_signature}")
    if program.prints is not None:
        line_no, expected_text = program.prints
        try:
            printed = comp.to_text(formatted=False)
        except Exception as e:  # noqa: BLE001
            printed = f"<printing raised {_one_line(e)}>"
        if printed != expected_text:
            failures.append(f"{program.where(line_no)}: prints: expected\n      "
                            f"{expected_text}\n      found\n      {printed}")
    _round_trip(program, comp, failures)
    for check in program.checks:
        _run_check(program, comp, check, failures, executor)
    return failures


EXECUTORS = ("reference", "fast", "dask")


@pytest.fixture(scope="module")
def dask_client():
    pytest.importorskip("distributed")
    from support import local_cluster
    yield from local_cluster()


def _params():
    params = []
    for path in PROGRAMS:
        reason = _xfail_reason(path)
        marks = [pytest.mark.xfail(reason=f"fcore bug: {reason}", strict=True)] if reason \
            else []
        params.append(pytest.param(path, id=path.name, marks=marks))
    return params


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("path", _params())
def test_program(path, executor, request):
    """Every program gives the same results on every executor (the reference interpreter is
    the oracle the others are held to; "dask" runs on a 2-worker LocalCluster)."""
    if executor == "dask":
        executor = ("dask", {"dask": request.getfixturevalue("dask_client")})
    try:
        program = read_program(path)
        failures = run_program(program, executor)
    except FormatError as e:
        pytest.fail(f"malformed program file: {e}", pytrace=False)
    if failures:
        pytest.fail(f"{len(failures)} failure(s) in {program.where()}:\n  " +
                    "\n  ".join(failures), pytrace=False)


def test_every_intrinsic_appears_in_a_passing_program():
    used = set()
    for path in PROGRAMS:
        if _xfail_reason(path) is None:
            program = read_program(path)
            if program.parse_error is None:
                used |= set(re.findall(r"[a-z_]+", program.text))
    missing = sorted(set(definitions.INTRINSICS) - used)
    assert not missing, f"no passing program in tests/lang/programs uses: {missing}"
