"""The `fcore` command: check, format, run and test computations written as text (`.fc`).

    fcore check prog.fc                       the type signature, or FILE:line:col: error
    fcore fmt --check programs/*.fc           exit 1 naming the files not in canonical form
    fcore run prog.fc --arg '[1, 2, 3]'       run it, print the result as JSON
    fcore test tests/lang/programs --leaves tests/lang/leaves.py

Exit codes: 0 success, 1 a failure in the user's program or files, 2 a usage error.

This module also holds the `.fc` test-file harness (`read_program`, `run_program`), which
`fcore test` and the project's own language tests (tests/lang/test_lang.py) share. A `.fc`
file is a header of `#` lines (free text, or `# key: value` directives, see `KEYS`) followed
by the text of one computation; the directives give the expected type signature and
results (docs/language.md, "The `fcore` command", describes the format).
"""

from __future__ import annotations

import argparse
import ast
import builtins
import collections.abc
import dataclasses
import difflib
import hashlib
import importlib
import importlib.util
import json
import math
import os
import pathlib
import re
import sys
import traceback

import numpy as np

import fcore
from fcore.ir import nodes
from fcore.syntax import errors as syntax_errors

EXECUTORS = ("reference", "fast")  # the kinds the command runs (Dask needs a cluster)


class UserError(Exception):
    """A failure the user caused (a missing file, bad JSON, an unknown leaf): printed as one
    line, exit status 1."""


# The `.fc` file format -------------------------------------------------------------------

KEYS = ("type", "prints", "num_clients", "call", "raises", "parse-error", "message", "xfail")
_DIRECTIVE = re.compile(r"#\s*([a-z][a-z_-]*)\s*:\s?(.*)$")


class FormatError(Exception):
    """A malformed test file (a directive that does not parse, or one that is missing)."""


@dataclasses.dataclass
class Source:
    """A `.fc` file split into its header (the `#` and blank lines before the program) and
    the program text, which starts on file line `text_line`."""
    header: list       # the header's lines, as in the file
    text: str          # the program text
    text_line: int     # file line of the program text's first line


def split_source(content: str) -> Source:
    lines = content.splitlines()
    index = len(lines)
    for i, raw in enumerate(lines):
        line = raw.strip()
        if line and not line.startswith("#"):
            index = i
            break
    return Source(lines[:index], "\n".join(lines[index:]).strip("\n"), index + 1)


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
    name: str = ""                # how messages name the file
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
        return f"{self.name}:{line}" if line else self.name


def read_program(path, name=None) -> Program:
    """Reads a `.fc` test file; `name` (by default the path) is how messages name it.
    Raises `FormatError` for a malformed file."""
    path = pathlib.Path(path)
    program = Program(path, name or path.as_posix())
    source = split_source(path.read_text(encoding="utf-8"))
    num_clients = None
    for index, raw in enumerate(source.header):
        line_no = index + 1
        line = raw.strip()
        if not line:
            continue
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
            try:
                num_clients = None if value == "none" else int(value)
            except ValueError:
                raise FormatError(f"{program.where(line_no)}: num_clients: expected a "
                                  f"number or `none`, found {value!r}") from None
        elif key in ("call", "raises"):
            if " => " not in value:
                raise FormatError(f"{program.where(line_no)}: write `# {key}: ARGS => "
                                  f"{'RESULT' if key == 'call' else 'ErrorName'}`")
            arguments, expected = value.split(" => ", 1)
            program.checks.append(Check(key, line_no, arguments.strip(), expected.strip(),
                                        num_clients))
        elif key == "parse-error":
            position, _, cls_name = value.partition(" ")
            row, _, column = position.partition(":")
            try:
                row, column = int(row), int(column)
            except ValueError:
                raise FormatError(f"{program.where(line_no)}: write `# parse-error: LINE:COL "
                                  f"[ErrorName]`, found {value!r}") from None
            program.parse_error = (line_no, row, column,
                                   exception_class(cls_name.strip() or "TypeParseError",
                                                   program.where(line_no)))
        elif key == "message":
            program.messages.append((line_no, value))
        elif key == "xfail":
            program.xfail = value
    program.text_line = source.text_line
    program.text = source.text
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


def exception_class(name, where):
    """`fcore.<name>`, else the builtin exception `<name>`."""
    cls = getattr(fcore, name, None) or getattr(builtins, name, None)
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        raise FormatError(f"{where}: {name!r} is not an fcore or builtin exception class")
    return cls


def xfail_reason(path):
    """The `# xfail:` reason of a test file, read without checking the rest of it."""
    source = split_source(pathlib.Path(path).read_text(encoding="utf-8"))
    for line in source.header:
        match = _DIRECTIVE.match(line.strip())
        if match and match.group(1) == "xfail":
            return match.group(2).strip()
    return None


# Python values in directives ---------------------------------------------------------------

_DTYPE_NAMES = ("bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                "uint64", "float16", "float32", "float64")


def _dataset(values, dtype=None):
    import tensorflow as tf
    array = np.asarray(values, dtype=dtype)
    return tf.data.Dataset.from_tensor_slices(array)


def value_of(text, where, env=None):
    """Evaluates a directive's Python value: literals, `nan`, `inf`, the names in `env`
    (computations), `int8(5)`..`float64(1.5)`, `array([..], 'float32')` and
    `dataset([..], 'int32')`."""
    names = {"nan": math.nan, "inf": math.inf, **(env or {})}
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
    try:
        return evaluate(tree.body)
    except FormatError:
        raise
    except Exception as e:  # noqa: BLE001 - a bad array or dtype, say
        raise FormatError(f"{where}: cannot evaluate {text!r}: {type(e).__name__}: "
                          f"{e}") from None


# Comparing results -------------------------------------------------------------------------

def difference(actual, expected, path=""):
    """None if `actual` matches `expected`, else what differs first (with its path).

    A float matches within a few ulps of the result's dtype (`nan` matches `nan`), ints and
    bools exactly, and the Python kind is checked too: a NumPy scalar for a number, a list
    for a list (or a NumPy array of that shape), a tuple for a tuple or an unnamed
    `fcore.Struct`, a dict for a named struct or mapping (same names, same order); `...`
    matches anything."""
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


# Running a test file -----------------------------------------------------------------------

def _one_line(error):
    return f"{type(error).__name__}: {error}".replace("\n", "\n      ")


def _run_negative(program, env, failures):
    line_no, row, column, cls = program.parse_error
    where = program.where(line_no)
    try:
        comp = fcore.parse_computation(program.text, env)
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


def _run_check(program, comp, check, env, failures, executor):
    where = f"{program.where(check.line)}: {check.kind}: {check.arguments} => {check.expected}"
    arguments = value_of(check.arguments, where, env)
    if not isinstance(arguments, tuple):
        raise FormatError(f"{where}: the arguments must be a tuple, e.g. `(1,)` or `()`")
    if check.kind == "call":
        expected = value_of(check.expected, where, env)
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
    cls = exception_class(name.strip(), where)
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


def run_program(program, env=None, executor="reference"):
    """Runs a test file's checks; returns the failures (each a message starting with
    `file:line:`; empty when the program passes). `env` binds the `@name` leaves (and the
    names that arguments may use); `executor` is a kind, or `(kind, options)` for
    `fcore.execution_context`. Raises `FormatError` for a directive that does not parse."""
    env = env or {}
    failures = []
    if program.parse_error is not None:
        _run_negative(program, env, failures)
        return failures
    try:
        comp = fcore.parse_computation(program.text, env)
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
        _run_check(program, comp, check, env, failures, executor)
    return failures


# Leaves ------------------------------------------------------------------------------------

def load_leaves(spec, module_name=None) -> dict:
    """The `@name` environment a leaves module gives: its `ENV` mapping if it has one, else
    its public module-level computations by attribute name. `spec` is a dotted module name
    importable from the current directory, or the path of a `.py` file (then loaded as
    `module_name`, by default one derived from the path). Raises `UserError`."""
    spec = str(spec)
    quiet_tensorflow()
    if spec.endswith(".py") or os.sep in spec or "/" in spec:
        module = _load_file(pathlib.Path(spec), module_name)
    else:
        module = _import_module(spec)
    env = getattr(module, "ENV", None)
    if env is not None:
        if not isinstance(env, collections.abc.Mapping):
            raise UserError(f"--leaves {spec}: ENV must be a dict of name -> computation, "
                            f"found a {type(env).__name__}")
        return dict(env)
    env = {name: value for name, value in vars(module).items()
           if not name.startswith("_") and isinstance(value, fcore.Computation)}
    if not env:
        raise UserError(f"--leaves {spec}: expected an ENV dict or module-level computations "
                        f"(@fcore.tf_computation), found none")
    return env


def _load_file(path, module_name):
    if not path.is_file():
        raise UserError(f"--leaves {path}: no such file")
    resolved = path.resolve()
    if module_name is None:
        digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:8]
        module_name = f"fcore_leaves_{re.sub(r'[^A-Za-z0-9_]', '_', path.stem)}_{digest}"
    known = sys.modules.get(module_name)
    if known is not None and pathlib.Path(getattr(known, "__file__", "")).resolve() == resolved:
        return known
    module_spec = importlib.util.spec_from_file_location(module_name, resolved)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException as e:
        del sys.modules[module_name]
        if isinstance(e, Exception):
            raise UserError(_import_failure(str(path), e)) from None
        raise
    return module


def _import_module(name):
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name and (name == e.name or name.startswith(e.name + ".")):
            raise UserError(f"--leaves {name}: expected a module importable from the current "
                            f"directory or a path to a .py file, found no module named "
                            f"{e.name!r}") from None
        raise UserError(_import_failure(name, e)) from None
    except Exception as e:  # noqa: BLE001 - the user's module failed while importing
        raise UserError(_import_failure(name, e)) from None


def _import_failure(spec, error):
    """One line for an exception raised while importing a leaves module, with the line of
    the module (or the innermost line in user code) where it happened."""
    if isinstance(error, SyntaxError):
        return f"--leaves {spec}: {error.filename}:{error.lineno}: SyntaxError: {error.msg}"
    package = str(pathlib.Path(fcore.__file__).resolve().parent) + os.sep
    user = [f for f in traceback.extract_tb(error.__traceback__)
            if not (f.filename.startswith(("<", package)) or "importlib" in f.filename or
                    "site-packages" in f.filename or "dist-packages" in f.filename or
                    "__autograph_generated" in f.filename)]
    at = f" at {user[-1].filename}:{user[-1].lineno}" if user else ""
    message = _flat(error, frame=False)
    return f"--leaves {spec}: importing it raised {type(error).__name__}{at}: {message}"


def quiet_tensorflow():
    """Imports TensorFlow with its C++ start-up logging (absl's, which ignores
    TF_CPP_MIN_LOG_LEVEL before it is initialized) sent to /dev/null, unless the user asked
    for logs with TF_CPP_MIN_LOG_LEVEL below 2."""
    if "tensorflow" in sys.modules:
        return
    try:
        level = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        level = 0
    if level < 2:
        return
    try:
        sys.stderr.flush()
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError):  # no file descriptor 2: nothing to silence
        return
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf
        tf.config.list_physical_devices()  # device start-up logs (no CUDA driver, say)
    except ImportError:
        pass  # reported where TensorFlow is used
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


# Reading programs --------------------------------------------------------------------------

def _read(path) -> str:
    path = pathlib.Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: expected a .fc file, found a directory") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: expected UTF-8 text, found byte {e.object[e.start]:#04x} at "
                        f"offset {e.start}") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read it: {e.strerror}") from None


class ProgramError(Exception):
    """A program that does not parse or type check, at a position of its file."""

    def __init__(self, path, line, column, message, source_line):
        super().__init__(message)
        self.path, self.line, self.column = path, line, column
        self.message, self.source_line = message, source_line

    def __str__(self):
        return f"{self.path}:{self.line}:{self.column}: {self.message}\n" + \
            syntax_errors.excerpt(self.source_line, 1, self.column)


_ERROR_PREFIX = re.compile(r"Invalid \w+ text at line \d+, column \d+: ")
_NOT_IN_ENV = re.compile(r"; pass env=\{.*\}$")


def parse_file(path, env, content=None):
    """(the `Source`, the computation) of a `.fc` file; raises `ProgramError` with the
    file's line and column where the text does not parse or type check."""
    content = _read(path) if content is None else content
    source = split_source(content)
    if not source.text.strip():
        raise UserError(f"{path}: expected the text of a computation, found none")
    try:
        comp = fcore.parse_computation(source.text, env, name=pathlib.Path(path).stem)
    except fcore.TypeParseError as e:
        line, column = getattr(e, "line", None) or 1, getattr(e, "column", None) or 1
        message = str(e)
        excerpt = syntax_errors.excerpt(source.text, line, column)
        if message.endswith("\n" + excerpt):
            message = message[:-len(excerpt) - 1]
        message = _ERROR_PREFIX.sub("", message, count=1).replace("\n", " ")
        if "is not in env" in message:
            message = _NOT_IN_ENV.sub("; name a module that defines it with --leaves MODULE"
                                      if not env else "", message)
        file_line = source.text_line + line - 1
        lines = content.splitlines()
        source_line = lines[file_line - 1] if 0 < file_line <= len(lines) else ""
        raise ProgramError(path, file_line, column, message, source_line) from None
    return source, comp


# The verbs ---------------------------------------------------------------------------------

def _each_file(args, err, work):
    """`work(path)` for each of `args.files`; a file's error is printed and makes the exit
    status 1 (or `work`'s own status), and the others still run."""
    status = 0
    for path in args.files:
        try:
            status = work(path) or status
        except ProgramError as e:
            print(e, file=err)
            status = 1
        except UserError as e:
            print(f"error: {e}", file=err)
            status = 1
    return status


def _check(args, out, err):
    env = load_leaves(args.leaves) if args.leaves else {}

    def check(path):
        _, comp = parse_file(path, env)
        signature = str(comp.type_signature)
        print(signature if len(args.files) == 1 else f"{path}: {signature}", file=out)
    return _each_file(args, err, check)


def canonical_text(path, env, content=None):
    """The canonical form of a `.fc` file: its header as it is, then the printed text of
    its computation (`str(comp)`). Raises `UserError` where that text would not read back
    as the same computation with `env` (a leaf kept in `env` under another name than its
    own, which the printer uses)."""
    content = _read(path) if content is None else content
    source, comp = parse_file(path, env, content)
    text = str(comp)
    for printed, leaf in comp.leaves().items():
        if not _same_leaf(env.get(printed), leaf):
            given = [name for name, value in env.items() if _same_leaf(value, leaf)]
            alias = f"@{given[0]} is" if given else "a leaf is"
            raise UserError(f"{path}: cannot print it canonically: {alias} the TF computation "
                            f"named {printed!r}, which prints as @{printed}; give it under its "
                            f"own name in the leaves module")
    again = fcore.parse_computation(text, env)
    if again != comp:
        raise UserError(f"{path}: cannot print it canonically: the printed text reads back "
                        f"as another computation: {text}")
    return "".join(line + "\n" for line in source.header) + text + "\n"


def _same_leaf(value, leaf):
    if value is leaf:
        return True
    ir = getattr(value, "ir", None)
    return isinstance(ir, nodes.TFLeaf) and ir.computation is leaf


def _fmt(args, out, err):
    env = load_leaves(args.leaves) if args.leaves else {}
    several = len(args.files) > 1

    def fmt(path):
        content = _read(path)
        canonical = canonical_text(path, env, content)
        changed = canonical != content
        if args.check:
            if changed:
                print(f"{path}: not in canonical form (fcore fmt -w {path} rewrites it)",
                      file=out)
                return 1
        elif args.write:
            if changed:
                pathlib.Path(path).write_text(canonical, encoding="utf-8")
                print(f"reformatted {path}", file=out)
        else:
            if several:
                print(f"==> {path} <==", file=out)
            out.write(canonical)
        return 0
    return _each_file(args, err, fmt)


def _run(args, out, err):
    quiet_tensorflow()
    env = load_leaves(args.leaves) if args.leaves else {}
    _, comp = parse_file(args.file, env)
    parameter = comp.type_signature.parameter
    if parameter is None:
        if args.arg is not None:
            raise UserError(f"{args.file}: the computation takes no parameter "
                            f"({comp.type_signature}), found --arg {_clip(args.arg)}")
        arguments = ()
    else:
        if args.arg is None:
            raise UserError(f"{args.file}: the computation takes a parameter of type "
                            f"{parameter}; give it as JSON with --arg")
        arguments = (from_json(_json_argument(args.arg), parameter, env),)
    try:
        with fcore.execution_context(args.executor, num_clients=args.num_clients):
            result = comp(*arguments)
    except fcore.CardinalityError:
        raise UserError(f"{args.file}: {comp.type_signature} needs the number of clients and "
                        f"no client-placed argument gives it; give --num-clients N") from None
    except fcore.TypeMismatchError as e:
        message = _flat(e)
        for prefix in (f"Calling {comp.name} ({comp.type_signature}): ",
                       f"Calling {comp.name}: "):
            message = message[len(prefix):] if message.startswith(prefix) else message
        message = message.replace("the execution context has num_clients=", "--num-clients is ")
        raise UserError(f"{args.file}: --arg does not fit the parameter type {parameter}: "
                        f"{message}") from None
    except Exception as e:  # noqa: BLE001 - a failure while running (in a TF leaf, say)
        raise UserError(f"{args.file}: running it raised {type(e).__name__}: {_flat(e)}") \
            from None
    print(to_json(result), file=out)
    return 0


def _json_argument(text):
    where = "--arg"
    if text.startswith("@"):
        where = f"--arg {text}"
        try:
            text = _read(text[1:])
        except UserError as e:
            raise UserError(f"{where}: {e}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{where}: expected JSON, found {_clip(text)!r} ({e.msg} at line "
                        f"{e.lineno}, column {e.colno})") from None


def from_json(value, type_, env=None, path=""):
    """The Python argument for `type_` from a JSON value: a list for `{T}@CLIENTS` (one value
    per client) and for a sequence, an object for a named struct (a list for an unnamed
    one), a number, string or bool for a tensor (nested lists for a shaped one), and for a
    function type the name of a computation in `env`. JSON numbers are read as floats where
    the type holds floats. What does not fit is left for the call to report."""
    if isinstance(type_, fcore.TensorType):
        if type_.dtype.kind in "fc":
            return _floats(value)
        return value
    if isinstance(type_, fcore.StructType):
        items = list(type_.items())
        if isinstance(value, dict):
            types = dict((name, t) for name, t in items if name is not None)
            return {k: from_json(v, types[k], env, f"{path}.{k}") if k in types else v
                    for k, v in value.items()}
        if isinstance(value, list):
            return tuple(from_json(v, t, env, f"{path}[{i}]") if i < len(items) else v
                         for i, (v, (_, t)) in enumerate(zip(value, items))) + \
                tuple(value[len(items):])
        return value
    if isinstance(type_, fcore.FederatedType):
        if type_.placement.name == "CLIENTS" and not type_.all_equal and \
                isinstance(value, list):
            return [from_json(v, type_.member, env, f"{path}[{i}]")
                    for i, v in enumerate(value)]
        return from_json(value, type_.member, env, path)
    if isinstance(type_, fcore.SequenceType):
        if isinstance(value, list):
            return [from_json(v, type_.element, env, f"{path}[{i}]")
                    for i, v in enumerate(value)]
        return value
    if isinstance(type_, fcore.FunctionType):
        env = env or {}
        if isinstance(value, str) and value in env:
            return env[value]
        known = ", ".join(sorted(env)) or "none: give them with --leaves MODULE"
        raise UserError(f"--arg{' at ' + path if path else ''}: expected the name of a "
                        f"computation of type {type_} (names: {known}), found "
                        f"{_clip(json.dumps(value))}")
    return value


def _floats(value):
    if isinstance(value, list):
        return [_floats(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def to_json(value) -> str:
    """A result as JSON text: NumPy values as numbers (float32 in its shortest digits) and
    nested lists, named structs as objects, unnamed ones as lists, bytes as strings."""
    return json.dumps(_jsonable(value), ensure_ascii=False)


def _jsonable(value):
    if isinstance(value, fcore.Struct):
        pairs = list(value.items())
        if pairs and all(name is not None for name, _ in pairs):
            return {name: _jsonable(v) for name, v in pairs}
        if any(name is not None for name, _ in pairs):
            return {name if name is not None else str(i): _jsonable(v)
                    for i, (name, v) in enumerate(pairs)}
        return [_jsonable(v) for _, v in pairs]
    if isinstance(value, collections.abc.Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return _jsonable(value[()])
        return [_jsonable(v) for v in value]
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", errors="backslashreplace")
    if isinstance(value, np.floating):
        return float(str(value)) if np.isfinite(value) else float(value)
    if isinstance(value, np.complexfloating):
        return [_jsonable(value.real), _jsonable(value.imag)]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (fcore.Computation, fcore.PolymorphicComputation)):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def _test(args, out, err):
    quiet_tensorflow()
    root = pathlib.Path(args.dir)
    if root.is_file():
        paths = [root]
    elif root.is_dir():
        paths = sorted(root.rglob("*.fc"))
    else:
        raise UserError(f"{root}: no such directory")
    if not paths:
        raise UserError(f"{root}: expected .fc test files under it, found none")
    env = load_leaves(args.leaves) if args.leaves else {}
    counts = collections.Counter()
    for path in paths:
        status, lines = test_file(path, env, args.executor)
        counts[status] += 1
        print(f"{status:<5} {lines[0]}", file=out)
        for line in lines[1:]:
            print(f"      {line}", file=out)
    total = sum(counts.values())
    summary = ", ".join(f"{counts[s]} {word}" for s, word in
                        (("PASS", "passed"), ("FAIL", "failed"), ("XFAIL", "xfailed"))
                        if counts[s] or s != "XFAIL")
    print(f"{summary} ({total} program{'s' if total != 1 else ''}, {args.executor} executor)",
          file=out)
    return 1 if counts["FAIL"] else 0


def test_file(path, env, executor="reference"):
    """(status, lines) for one test file: status PASS, FAIL or XFAIL (a file marked `#
    xfail:` that fails; one that passes is a FAIL); `lines[0]` names the file, and for a
    failure the line of the directive that failed and what differed; further lines tell of
    further failures (or the details of a long one)."""
    name = pathlib.Path(path).as_posix()
    try:
        program = read_program(path, name)
        failures = run_program(program, env, executor)
    except FormatError as e:
        where = str(e) if str(e).startswith(name) else f"{name}: {e}"
        return "FAIL", [f"{where} (malformed test file)"]
    except (OSError, ValueError) as e:  # unreadable, or not UTF-8
        return "FAIL", [f"{name}: cannot read it: {e}"]
    checks = len(program.checks)
    if program.xfail is not None:
        if failures:
            return "XFAIL", [f"{name}: known failure: {program.xfail}"]
        return "FAIL", [f"{name}: marked `# xfail: {program.xfail}`, but it passes"]
    if not failures:
        what = "parse error as expected" if program.parse_error else \
            f"{checks} check{'s' if checks != 1 else ''}"
        return "PASS", [f"{name} ({what})"]
    lines = []
    for failure in failures:
        parts = [line[6:] if line.startswith(" " * 6) else line.strip()
                 for line in failure.splitlines()]  # the harness indents details by 6
        if len(parts) == 2:  # a check and what differed: one line
            parts = [f"{parts[0]}: {parts[1].strip()}"]
        lines.extend(parts)
    return "FAIL", lines


# The command -------------------------------------------------------------------------------

def _clip(text, limit=60):
    text = str(text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


_FRAME = re.compile(r'File "(.*)", line (\d+), in (\S*)')


def _flat(error, frame=True):
    """An error's message on one line, without the stack frames that TensorFlow's messages
    list (nor the source line after each) and its op details; with `frame`, the innermost
    frame outside fcore (where a TF leaf failed) is named at the end."""
    package = str(pathlib.Path(fcore.__file__).resolve().parent) + os.sep
    kept, innermost, after_frame = [], None, False
    for line in str(error).splitlines():
        line = line.strip()
        match = _FRAME.match(line)
        if match:
            if not match.group(1).startswith(package):
                innermost = match
            after_frame = True
            continue
        if line and not after_frame and not line.startswith(("Detected at node", "[[")):
            kept.append(line)
        after_frame = False
    text = " ".join(kept)
    if frame and innermost is not None:
        text += f" (at {innermost.group(1)}:{innermost.group(2)}, in {innermost.group(3)})"
    return text


def _parser():
    parser = argparse.ArgumentParser(
        prog="fcore", description="Check, format, run and test fcore computations written as "
        "text (.fc files). Exit status: 0 success, 1 a failure in the programs or files, "
        "2 a usage error.")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")

    def leaves(sub):
        sub.add_argument("--leaves", metavar="MODULE",
                         help="where `@name` leaves come from: a dotted module name importable "
                         "from the current directory, or a path to a .py file; its ENV dict "
                         "(name -> computation), else its module-level computations")

    check = verbs.add_parser("check", help="parse and type check; print the type signature",
                             description="Parse and type check each FILE and print its type "
                             "signature; errors print as FILE:line:col: message, with a caret.")
    check.add_argument("files", nargs="+", metavar="FILE")
    leaves(check)
    check.set_defaults(handler=_check)

    fmt = verbs.add_parser("fmt", help="print or rewrite programs in canonical form",
                           description="Print each FILE in canonical form: its header lines as "
                           "they are, then the computation as fcore prints it (str(comp)).")
    fmt.add_argument("files", nargs="+", metavar="FILE")
    mode = fmt.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="print nothing but the files not in canonical form; exit 1 if any")
    mode.add_argument("-w", "--write", action="store_true",
                      help="rewrite the files not in canonical form in place")
    leaves(fmt)
    fmt.set_defaults(handler=_fmt)

    run = verbs.add_parser("run", help="run a program on a JSON argument; print the result",
                           description="Run the computation in FILE on the argument given as "
                           "JSON and print the result as JSON.")
    run.add_argument("file", metavar="FILE")
    run.add_argument("--arg", metavar="JSON",
                     help="the argument: a list for {T}@CLIENTS (a value per client) and for "
                     "sequences, an object for a named struct, a list for an unnamed one, the "
                     "name of a leaf for a function; @PATH reads the JSON from a file")
    run.add_argument("--num-clients", type=_count, metavar="N",
                     help="the number of clients, where no client-placed argument gives it")
    run.add_argument("--executor", choices=EXECUTORS, default="fast",
                     help="the executor (default: fast)")
    leaves(run)
    run.set_defaults(handler=_run)

    test = verbs.add_parser("test", help="run the .fc test files in a directory",
                            description="Run every .fc test file under DIR (recursively): "
                            "each gives its expected type signature and results in `#` "
                            "directives. Prints PASS or FAIL per file and a summary.")
    test.add_argument("dir", metavar="DIR")
    test.add_argument("--executor", choices=EXECUTORS, default="reference",
                      help="the executor (default: reference)")
    leaves(test)
    test.set_defaults(handler=_test)
    return parser


def _count(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, found {text!r}")
    return value


def main(argv=None) -> int:
    """Runs the `fcore` command with `argv` (by default `sys.argv[1:]`); returns the exit
    status: 0 success, 1 a failure in the user's programs or files, 2 a usage error."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a usage error (argparse has printed it)
        return e.code if isinstance(e.code, int) else 2
    if args.verb is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.handler(args, sys.stdout, sys.stderr)
    except ProgramError as e:
        print(e, file=sys.stderr)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
    except BrokenPipeError:  # `fcore test DIR | head`: the reader has gone
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
    return 1
