"""Language tests: programs written as text in `programs/*.fc`, each run by this driver on
every executor (`fcore test tests/lang/programs --leaves tests/lang/leaves.py` runs them
from the command line, with the same code: `fcore.cli`).

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

import pathlib
import re

import pytest

from fcore import cli
from fcore.intrinsics import definitions

HERE = pathlib.Path(__file__).parent
PROGRAMS = sorted((HERE / "programs").glob("*.fc"))

# The reading, running and comparing of `.fc` files is `fcore.cli`'s, which `fcore test`
# runs too; this driver runs every program on every executor, under pytest.


def _env():
    return cli.load_leaves(HERE / "leaves.py", module_name="fcore_lang_test_leaves")


def read_program(path):
    return cli.read_program(path, path.relative_to(HERE).as_posix())


EXECUTORS = ("reference", "fast", "dask")


@pytest.fixture(scope="module")
def dask_client():
    pytest.importorskip("distributed")
    from support import local_cluster
    yield from local_cluster()


def _params():
    params = []
    for path in PROGRAMS:
        reason = cli.xfail_reason(path)
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
        failures = cli.run_program(program, _env(), executor)
    except cli.FormatError as e:
        pytest.fail(f"malformed program file: {e}", pytrace=False)
    if failures:
        pytest.fail(f"{len(failures)} failure(s) in {program.where()}:\n  " +
                    "\n  ".join(failures), pytrace=False)


def test_every_intrinsic_appears_in_a_passing_program():
    used = set()
    for path in PROGRAMS:
        if cli.xfail_reason(path) is None:
            program = read_program(path)
            if program.parse_error is None:
                used |= set(re.findall(r"[a-z_]+", program.text))
    missing = sorted(set(definitions.INTRINSICS) - used)
    assert not missing, f"no passing program in tests/lang/programs uses: {missing}"
