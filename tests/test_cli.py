"""The `fcore` command (fcore/cli.py): check, fmt, run and test, their exit statuses (0
success, 1 a failure in the user's programs or files, 2 a usage error) and messages."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fcore
from fcore import cli

ROOT = pathlib.Path(__file__).resolve().parents[1]

LEAVES = '''
import numpy as np

import fcore


@fcore.tf_computation(np.int32)
def add_one(x):
    return x + 1


@fcore.tf_computation(np.float32)
def checked(x):
    import tensorflow as tf
    tf.debugging.assert_positive(x)
    return x
'''

SUM = "(x:{int32}@CLIENTS -> federated_sum(x))"


@pytest.fixture(autouse=True)
def quiet_tensorflow(monkeypatch):
    """`main` sets TF_CPP_MIN_LOG_LEVEL if unset; the tests put it back afterwards."""
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))


def write(directory, name, text):
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def fcore_cli(capsys, *argv):
    """(exit status, stdout, stderr) of `fcore ARGV` run in this process."""
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def leaves(tmp_path):
    return write(tmp_path, "my_leaves.py", LEAVES)


# Usage -------------------------------------------------------------------------------------

def test_help(capsys):
    status, out, _ = fcore_cli(capsys, "--help")
    assert status == 0
    for verb in ("check", "fmt", "run", "test"):
        assert verb in out
    for verb in ("check", "fmt", "run", "test"):
        status, out, _ = fcore_cli(capsys, verb, "--help")
        assert status == 0 and f"usage: fcore {verb}" in out and "--leaves" in out


def test_usage_errors_exit_2(capsys):
    assert fcore_cli(capsys)[0] == 2
    status, _, err = fcore_cli(capsys, "frobnicate")
    assert status == 2 and "invalid choice" in err
    assert fcore_cli(capsys, "run")[0] == 2  # FILE missing
    status, _, err = fcore_cli(capsys, "run", "x.fc", "--num-clients", "-3")
    assert status == 2 and "expected a whole number >= 0, found '-3'" in err
    status, _, err = fcore_cli(capsys, "run", "x.fc", "--executor", "quantum")
    assert status == 2 and "invalid choice" in err
    assert fcore_cli(capsys, "fmt", "--check", "--write", "x.fc")[0] == 2


# check -------------------------------------------------------------------------------------

def test_check_prints_the_type_signature(tmp_path, capsys):
    path = write(tmp_path, "sum.fc", f"# A sum.\n\n{SUM}\n")
    status, out, err = fcore_cli(capsys, "check", path)
    assert (status, out, err) == (0, "({int32}@CLIENTS -> int32@SERVER)\n", "")
    other = write(tmp_path, "seven.fc", "( -> 7)")
    status, out, _ = fcore_cli(capsys, "check", path, other)
    assert status == 0
    assert out.splitlines() == [f"{path}: ({{int32}}@CLIENTS -> int32@SERVER)",
                                f"{other}: ( -> int32)"]


def test_check_reports_type_errors_with_file_line_and_caret(tmp_path, capsys):
    path = write(tmp_path, "mean.fc", """
        # The mean of ints is a type error, on file line 4 (the header is 2 lines, and
        # the program starts with a line of its own).
        (x:{int32}@CLIENTS ->
          federated_mean(x))
        """)
    status, out, err = fcore_cli(capsys, "check", path)
    assert status == 1 and out == ""
    first, source, caret = err.splitlines()
    assert first.startswith(f"{path}:4:3: ")
    assert "is not compatible with the average operator" in first
    assert source.strip() == "federated_mean(x))"
    assert caret.index("^") == source.index("federated_mean")
    assert "Invalid computation text" not in err and "Traceback" not in err


def test_check_reports_syntax_errors_at_the_end_of_the_text(tmp_path, capsys):
    path = write(tmp_path, "open.fc", "(x:int32 ->\n  <x, x>\n")
    status, _, err = fcore_cli(capsys, "check", path)
    assert status == 1
    assert err.splitlines()[0] == f"{path}:2:9: expected ')', found the end of the text."
    assert err.splitlines()[2].index("^") == err.splitlines()[1].index(">") + 1


def test_check_user_errors_are_one_line(tmp_path, capsys):
    status, _, err = fcore_cli(capsys, "check", tmp_path / "missing.fc")
    assert status == 1 and err == f"error: {tmp_path / 'missing.fc'}: no such file\n"
    status, _, err = fcore_cli(capsys, "check", tmp_path)
    assert status == 1 and "expected a .fc file, found a directory" in err
    (tmp_path / "latin1.fc").write_bytes(b"( -> \"caf\xe9\")")
    status, _, err = fcore_cli(capsys, "check", tmp_path / "latin1.fc")
    assert status == 1 and "expected UTF-8 text, found byte 0xe9" in err
    write(tmp_path, "empty.fc", "# only a header\n")
    status, _, err = fcore_cli(capsys, "check", tmp_path / "empty.fc")
    assert status == 1 and "expected the text of a computation, found none" in err


def test_check_unknown_leaf_names_the_leaves_option(tmp_path, capsys):
    path = write(tmp_path, "leaf.fc", "(x:int32 -> @add_one(x))")
    status, _, err = fcore_cli(capsys, "check", path)
    assert status == 1
    assert err.splitlines()[0] == (f"{path}:1:13: @add_one is not in env (env names: none); "
                                   f"name a module that defines it with --leaves MODULE")


def test_check_with_leaves_from_a_file_or_a_module(tmp_path, capsys, leaves, monkeypatch):
    path = write(tmp_path, "leaf.fc", "(x:int32 -> @add_one(x))")
    status, out, _ = fcore_cli(capsys, "check", path, "--leaves", leaves)
    assert (status, out) == (0, "(int32 -> int32)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    status, out, _ = fcore_cli(capsys, "check", "leaf.fc", "--leaves", "my_leaves")
    assert (status, out) == (0, "(int32 -> int32)\n")
    bad = write(tmp_path, "leaf_typo.fc", "(x:int32 -> @add_on(x))")
    status, _, err = fcore_cli(capsys, "check", bad, "--leaves", leaves)
    assert status == 1 and "@add_on is not in env (env names: add_one, checked)" in err


def test_leaves_errors(tmp_path, capsys, monkeypatch):
    path = write(tmp_path, "seven.fc", "( -> 7)")
    monkeypatch.chdir(tmp_path)
    status, _, err = fcore_cli(capsys, "check", path, "--leaves", "no_such_module")
    assert status == 1 and err == (
        "error: --leaves no_such_module: expected a module importable from the current "
        "directory or a path to a .py file, found no module named 'no_such_module'\n")
    status, _, err = fcore_cli(capsys, "check", path, "--leaves", "gone.py")
    assert status == 1 and err == "error: --leaves gone.py: no such file\n"
    broken = write(tmp_path, "broken.py", "x = 1\nraise RuntimeError('no leaves today')\n")
    status, _, err = fcore_cli(capsys, "check", path, "--leaves", broken)
    assert status == 1 and len(err.splitlines()) == 1
    assert f"importing it raised RuntimeError at {broken.resolve()}:2: no leaves today" in err
    empty = write(tmp_path, "empty.py", "x = 1\n")
    status, _, err = fcore_cli(capsys, "check", path, "--leaves", empty)
    assert status == 1 and "expected an ENV dict or module-level computations" in err


# fmt ---------------------------------------------------------------------------------------

def test_fmt_prints_the_canonical_text_keeping_the_header(tmp_path, capsys, leaves):
    path = write(tmp_path, "prog.fc", """
        # A header line, kept as it is.
        # type: ({int32}@CLIENTS -> int32@SERVER)

        (x:{int32}@CLIENTS ->
           federated_sum(federated_map(<@add_one, x>)))
        """)
    status, out, _ = fcore_cli(capsys, "fmt", path, "--leaves", leaves)
    assert status == 0
    assert out == ("# A header line, kept as it is.\n# type: ({int32}@CLIENTS -> int32@SERVER)\n"
                   "\n(x:{int32}@CLIENTS -> federated_sum(federated_map(<@add_one,x>)))\n")


def test_fmt_check_and_write(tmp_path, capsys, leaves):
    canonical = write(tmp_path, "canonical.fc", f"# fine\n{SUM}\n")
    messy = write(tmp_path, "messy.fc", "(x:int32 ->  @add_one( x ))")
    before = messy.read_text()
    status, out, err = fcore_cli(capsys, "fmt", "--check", canonical, "--leaves", leaves)
    assert (status, out, err) == (0, "", "")
    status, out, err = fcore_cli(capsys, "fmt", "--check", canonical, messy, "--leaves", leaves)
    assert status == 1 and err == ""
    assert out == f"{messy}: not in canonical form (fcore fmt -w {messy} rewrites it)\n"
    assert messy.read_text() == before  # --check writes nothing
    status, out, _ = fcore_cli(capsys, "fmt", "-w", canonical, messy, "--leaves", leaves)
    assert (status, out) == (0, f"reformatted {messy}\n")
    assert messy.read_text() == "(x:int32 -> @add_one(x))\n"
    assert fcore_cli(capsys, "fmt", "--check", canonical, messy, "--leaves", leaves)[0] == 0


def test_fmt_errors(tmp_path, capsys):
    bad = write(tmp_path, "bad.fc", "(x:int32 -> federated_sum(x))")
    good = write(tmp_path, "good.fc", "( -> 7)\n")
    status, out, err = fcore_cli(capsys, "fmt", "--check", bad, good)
    assert status == 1 and out == ""
    assert err.startswith(f"{bad}:1:13: ") and "^" in err
    aliased = write(tmp_path, "aliased.py", LEAVES + "\nENV = {'plus_one': add_one}\n")
    path = write(tmp_path, "alias.fc", "(x:int32 -> @plus_one(x))")
    status, _, err = fcore_cli(capsys, "fmt", path, "--leaves", aliased)
    assert status == 1 and "@plus_one is the TF computation named 'add_one'" in err


# run ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("executor", ["reference", "fast"])
def test_run_a_federated_sum(tmp_path, capsys, executor):
    path = write(tmp_path, "sum.fc", SUM)
    status, out, err = fcore_cli(capsys, "run", path, "--arg", "[1, 2, 3, 4]",
                                 "--executor", executor, "--num-clients", "4")
    assert (status, out, err) == (0, "10\n", "")
    status, _, err = fcore_cli(capsys, "run", path, "--arg", "[1, 2]", "--executor", executor,
                               "--num-clients", "3")
    assert status == 1
    assert "--num-clients is 3, but the client-placed arguments have 2 clients" in err


@pytest.mark.parametrize("executor", ["reference", "fast"])
def test_run_with_num_clients_and_leaves(tmp_path, capsys, leaves, executor):
    path = write(tmp_path, "bcast.fc", """
        (s:int32@SERVER -> (let b=federated_broadcast(s),
                                c=federated_map(<@add_one, b>)
                            in <total=federated_sum(c), each=c>))
        """)
    status, out, err = fcore_cli(capsys, "run", path, "--arg", "2", "--num-clients", "3",
                                 "--executor", executor, "--leaves", leaves)
    assert (status, err) == (0, "")
    assert json.loads(out) == {"total": 9, "each": [3, 3, 3]}
    status, _, err = fcore_cli(capsys, "run", path, "--arg", "2", "--executor", executor,
                               "--leaves", leaves)
    assert status == 1 and "give --num-clients N" in err


def test_run_converts_json_to_the_parameter_type(tmp_path, capsys):
    path = write(tmp_path, "mixed.fc", """
        (p:<v=float32[2],b={float32}@CLIENTS,s=int32*,u=<bool,str>> ->
           <v=p.v, mean=federated_mean(p.b), total=sequence_sum(p.s), u=p.u, f=0.1>)
        """)
    arg = '{"v": [1, 2.5], "b": [1, 2, 6], "s": [1, 2, 3], "u": [true, "text"]}'
    status, out, err = fcore_cli(capsys, "run", path, "--arg", arg)
    assert (status, err) == (0, "")
    assert out == '{"v": [1.0, 2.5], "mean": 3.0, "total": 6, "u": [true, "text"], "f": 0.1}\n'
    (tmp_path / "arg.json").write_text(arg)
    status, again, _ = fcore_cli(capsys, "run", path, "--arg", f"@{tmp_path / 'arg.json'}")
    assert (status, again) == (0, out)


def test_run_user_errors(tmp_path, capsys, leaves):
    path = write(tmp_path, "sum.fc", SUM)
    status, out, err = fcore_cli(capsys, "run", path, "--arg", "[1, 2")
    assert status == 1 and out == ""
    assert err == ("error: --arg: expected JSON, found '[1, 2' (Expecting ',' delimiter at "
                   "line 1, column 6)\n")
    status, _, err = fcore_cli(capsys, "run", path, "--arg", "[1, 2.5]")
    assert status == 1 and len(err.splitlines()) == 1
    assert err.startswith(f"error: {path}: --arg does not fit the parameter type "
                          f"{{int32}}@CLIENTS: Expected a value of type int32 at [client 1], "
                          f"found 2.5")
    status, _, err = fcore_cli(capsys, "run", path)
    assert status == 1 and "takes a parameter of type {int32}@CLIENTS; give it as JSON with " \
        "--arg" in err
    seven = write(tmp_path, "seven.fc", "( -> 7)")
    assert fcore_cli(capsys, "run", seven)[:2] == (0, "7\n")
    status, _, err = fcore_cli(capsys, "run", seven, "--arg", "1")
    assert status == 1 and "takes no parameter" in err
    status, _, err = fcore_cli(capsys, "run", tmp_path / "nope.fc", "--arg", "1")
    assert status == 1 and "no such file" in err
    status, _, err = fcore_cli(capsys, "run", path, "--arg", f"@{tmp_path / 'nope.json'}")
    assert status == 1 and "error: --arg @" in err and "nope.json: no such file" in err
    checked = write(tmp_path, "checked.fc", "(x:float32 -> @checked(x))")
    status, _, err = fcore_cli(capsys, "run", checked, "--arg", "-1", "--leaves", leaves)
    assert status == 1 and len(err.splitlines()) == 1
    assert "running it raised ExecutionError: TF computation 'checked' failed" in err
    assert "my_leaves.py:" in err and "Traceback" not in err


def test_run_function_arguments_name_leaves(tmp_path, capsys, leaves):
    path = write(tmp_path, "apply.fc", "(p:<f=(int32 -> int32),x=int32> -> p.f(p.x))")
    status, out, _ = fcore_cli(capsys, "run", path, "--arg", '{"f": "add_one", "x": 41}',
                               "--leaves", leaves)
    assert (status, out) == (0, "42\n")
    status, _, err = fcore_cli(capsys, "run", path, "--arg", '{"f": "nope", "x": 41}',
                               "--leaves", leaves)
    assert status == 1
    assert err == ("error: --arg at .f: expected the name of a computation of type "
                   "(int32 -> int32) (names: add_one, checked), found \"nope\"\n")


def test_json_conversions():
    t = fcore.parse_type
    assert cli.from_json([1, 2], t("{float32}@CLIENTS")) == [1.0, 2.0]
    assert cli.from_json({"a": 1, "b": [1]}, t("<a=float64,b=int32[1]>")) == \
        {"a": 1.0, "b": [1]}
    assert cli.from_json([1, True], t("<float32,bool>")) == (1.0, True)
    assert cli.from_json(3, t("float32@SERVER")) == 3.0
    struct = fcore.Struct([("a", np.float32(0.1)), ("b", np.array([[1, 2]], np.int64))])
    assert cli.to_json(struct) == '{"a": 0.1, "b": [[1, 2]]}'
    assert cli.to_json(fcore.Struct([(None, b"x"), (None, np.bool_(True))])) == '["x", true]'
    assert cli.to_json([np.float32("nan"), np.complex64(1 - 2j)]) == '[NaN, [1.0, -2.0]]'


# test --------------------------------------------------------------------------------------

def test_test_runs_every_program_in_a_directory(tmp_path, capsys, leaves):
    write(tmp_path, "progs/good.fc", f"""
        # Passes.
        # type: ({{int32}}@CLIENTS -> int32@SERVER)
        # call: ([1, 2, 3],) => 6
        # raises: ([1.5],) => TypeMismatchError: a Python float
        {SUM}
        """)
    write(tmp_path, "progs/nested/bad.fc", """
        # Fails: the expected result is wrong.
        # type: ({int32}@CLIENTS -> {int32}@CLIENTS)
        # call: ([1, 2],) => [2, 4]
        (x:{int32}@CLIENTS -> federated_map(<@add_one, x>))
        """)
    progs = tmp_path / "progs"
    status, out, err = fcore_cli(capsys, "test", progs, "--leaves", leaves)
    assert status == 1 and err == ""
    lines = out.splitlines()
    bad, good = (progs / "nested" / "bad.fc").as_posix(), (progs / "good.fc").as_posix()
    assert lines[0] == f"PASS  {good} (2 checks)"
    assert lines[1] == (f"FAIL  {bad}:3: call: ([1, 2],) => [2, 4]: [1]: expected 4 (a NumPy "
                        f"integer), found np.int32(3)")
    assert len(lines) == 3
    assert lines[-1] == "1 passed, 1 failed (2 programs, reference executor)"
    status, out, _ = fcore_cli(capsys, "test", progs / "good.fc", "--executor", "fast")
    assert status == 0
    assert out.splitlines()[-1] == "1 passed, 0 failed (1 program, fast executor)"


def test_test_format_errors_xfail_and_parse_errors(tmp_path, capsys):
    write(tmp_path, "typo.fc", "# type: (int32 -> int32)\n# cal: (1,) => 1\n(x:int32 -> x)\n")
    write(tmp_path, "known.fc", """
        # xfail: the expected result is wrong on purpose
        # type: (int32 -> int32)
        # call: (1,) => 2
        (x:int32 -> x)
        """)
    write(tmp_path, "unexpected.fc", """
        # xfail: but it passes
        # type: (int32 -> int32)
        # call: (1,) => 1
        (x:int32 -> x)
        """)
    write(tmp_path, "negative.fc", """
        # parse-error: 1:13 ComputationTypeError
        # message: placed at CLIENTS
        (x:int32 -> federated_sum(x))
        """)
    status, out, _ = fcore_cli(capsys, "test", tmp_path)
    assert status == 1
    lines = out.splitlines()
    assert lines[0] == f"XFAIL {tmp_path.as_posix()}/known.fc: known failure: the expected " \
        "result is wrong on purpose"
    assert lines[1] == f"PASS  {tmp_path.as_posix()}/negative.fc (parse error as expected)"
    assert lines[2] == f"FAIL  {tmp_path.as_posix()}/typo.fc:2: unknown directive 'cal'; " \
        "did you mean 'call'? (malformed test file)"
    assert lines[3] == f"FAIL  {tmp_path.as_posix()}/unexpected.fc: marked `# xfail: but it " \
        "passes`, but it passes"
    assert lines[4] == "1 passed, 2 failed, 1 xfailed (4 programs, reference executor)"


def test_test_needs_programs(tmp_path, capsys):
    status, _, err = fcore_cli(capsys, "test", tmp_path)
    assert status == 1 and err == f"error: {tmp_path}: expected .fc test files under it, " \
        "found none\n"
    status, _, err = fcore_cli(capsys, "test", tmp_path / "nowhere")
    assert status == 1 and "no such directory" in err


def test_the_language_tests_share_the_harness():
    import importlib.util
    spec = importlib.util.spec_from_file_location("fcore_cli_test_lang",
                                                  ROOT / "tests" / "lang" / "test_lang.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.cli is cli
    program = module.read_program(ROOT / "tests" / "lang" / "programs" / "federated_sum.fc")
    assert program.where(3) == "programs/federated_sum.fc:3"
    assert cli.run_program(program) == []


# python -m fcore ---------------------------------------------------------------------------

def test_python_dash_m_fcore(tmp_path):
    good = write(tmp_path, "good.fc", f"# header\n{SUM}\n")
    bad = write(tmp_path, "bad.fc", "# header\n(x:int32 ->\n  federated_sum(x))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "fcore", "check", str(good)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == \
        (0, "({int32}@CLIENTS -> int32@SERVER)\n", "")
    done = subprocess.run([sys.executable, "-m", "fcore", "check", str(bad)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stdout == ""
    first, source, caret = done.stderr.splitlines()
    assert first.startswith(f"{bad}:3:3: ") and "placed at CLIENTS" in first
    assert caret.index("^") == source.index("federated_sum")
