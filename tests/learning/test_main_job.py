"""The main job, `python -m learning.mnist`: options checked before TensorFlow loads, a tiny
run's outputs, checkpoints and --resume, HDF5 data, DP-FedAvg with its epsilon, and the
filter of TensorFlow's C++ log lines."""

import csv
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from learning import mnist
from learning.privacy import compute_epsilon

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Each bad option list, run through mnist.main in one fresh interpreter; the error must name
# the option and come before TensorFlow is imported.
CHECK_BEFORE_TENSORFLOW = """
import contextlib, io, json, sys, time
from learning import mnist
results = []
for argv in json.loads(sys.argv[1]):
    stderr = io.StringIO()
    began = time.perf_counter()
    with contextlib.redirect_stderr(stderr):
        try:
            mnist.main(argv)
            code = 0
        except SystemExit as e:
            code = e.code
    results.append([code, stderr.getvalue(), time.perf_counter() - began])
print(json.dumps({"results": results, "tensorflow": "tensorflow" in sys.modules}))
"""


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def write_h5(path, sizes, seed=0):
    """A tiny federated EMNIST in TFF's layout: examples/<writer>/pixels|label."""
    import h5py
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        for i, n in enumerate(sizes):
            client = f.create_group(f"examples/f{i:04d}_{seed:02d}")
            client.create_dataset("pixels", data=rng.random((n, 28, 28), dtype=np.float32))
            client.create_dataset("label", data=rng.integers(0, 10, n).astype(np.int32))
    return str(path)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_bad_options_exit_with_status_2_naming_the_option_before_tensorflow(tmp_path):
    h5 = write_h5(tmp_path / "train.h5", [8, 9, 10, 11, 12, 13])
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "ckpt_00001.npz").write_bytes(b"earlier run")
    (tmp_path / "notes.txt").write_text("not data")
    cases = [
        (["--clients", "0"], "argument --clients: must be an integer >= 1, found 0"),
        (["--batch-size", "0"], "argument --batch-size"),
        (["--rounds", "-1"], "argument --rounds"),
        (["--rounds", "two"], "argument --rounds: expected an integer"),
        (["--clients", "10", "--clients-per-round", "20"],
         "--clients-per-round 20 exceeds the 10 training clients"),
        (["--dp-noise", "-0.5"], "argument --dp-noise"),
        (["--dp-noise", "nan"], "argument --dp-noise"),
        (["--dp-noise", "0.5", "--dp-clip", "0"], "argument --dp-clip"),
        (["--dp-clip", "1.0"], "--dp-clip needs --dp-noise"),
        (["--dp-noise", "0.5", "--dp-delta", "1"], "argument --dp-delta"),
        (["--dp-noise", "2"], "--dp-noise 2 with the adaptive clip needs --clients-per-round"),
        (["--evaluate-every", "0"], "argument --evaluate-every"),
        (["--seed", "-1"], "argument --seed"),
        (["--alpha", "0"], "argument --alpha"),
        (["--split", "random"], "argument --split"),
        (["--resume"], "--resume needs --checkpoint-dir"),
        (["--checkpoint-dir", str(tmp_path / "ckpt")],
         "is not empty (an earlier run's checkpoints?): pass --resume"),
        (["--data", str(tmp_path / "missing.npz")], "no such file or folder"),
        (["--data", str(tmp_path / "notes.txt")], "neither an HDF5 file nor an .npz"),
        (["--data", str(tmp_path)], "a folder of MNIST IDX files lacks"),
        (["--test-data", h5], "--test-data applies to an h5 --data file"),
        (["--data", h5, "--clients", "7"], "--clients 7 exceeds the 6 clients of --data"),
        (["--data", h5, "--clients-per-round", "6"],
         "--clients-per-round 6 exceeds the 5 training clients (1 more held out)"),
        (["--data", h5, "--test-clients", "6"], "--test-clients 6 leaves no training clients"),
        (["--data", h5, "--split", "iid"], "--split applies to MNIST data"),
        (["--data", h5, "--test-data", str(tmp_path / "notes.txt")],
         "--test-data " + str(tmp_path / "notes.txt") + ": not an HDF5 file"),
    ]
    out = subprocess.run([sys.executable, "-c", CHECK_BEFORE_TENSORFLOW,
                          json.dumps([argv for argv, _ in cases])], cwd=tmp_path,
                         env=_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    for (argv, message), (code, stderr, seconds) in zip(cases, report["results"]):
        assert code == 2, (argv, stderr)
        assert message in stderr, (argv, stderr)
        assert stderr.startswith("usage: python -m learning.mnist"), (argv, stderr)
        assert seconds < 1.0, (argv, seconds)
    assert report["tensorflow"] is False


def test_the_command_line_fails_fast_without_tensorflow():
    began = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "learning.mnist", "--clients", "0"],
                         cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)
    seconds = time.perf_counter() - began
    assert out.returncode == 2
    assert "argument --clients: must be an integer >= 1, found 0" in out.stderr
    assert seconds < 5.0  # an interpreter and argparse, no TensorFlow (which takes ~5 s)


def test_help_shows_every_default(capsys):
    with pytest.raises(SystemExit) as exit_:
        mnist.parse_args(["--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("rounds per model (with --resume: the total to reach) (default: 6)",
                  "examples per batch (default: 100)", "(default: 1e-05)",
                  "(default: out)", "(default: 10)", "(default: all training clients)",
                  "(default: by_label", "(default: no DP)", "(default: the --output folder)",
                  "(default: none)", "(default: a tenth of them, at least 1)"):
        assert shown in text, shown


def test_the_native_log_filter_keeps_everything_else(capfd):
    with mnist._without_native_logs():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are "
                    b"written to STDERR\n")
        os.write(2, b"I0000 00:00:1796177124.105673   23233 port.cc:153] oneDNN custom "
                    b"operations are on.\n")
        os.write(2, b"E0000 00:00:1796177131.580362   23233 cuda_platform.cc:52] failed call "
                    b"to cuInit: UNKNOWN ERROR (303)\n")
        os.write(2, b"a Python warning\n")
    assert capfd.readouterr().err == "a Python warning\n"
    with pytest.raises(RuntimeError), mnist._without_native_logs():
        os.write(2, b"I0000 00:00:1.5   1 port.cc:1] kept when the block fails\n")
        raise RuntimeError
    assert "kept when the block fails" in capfd.readouterr().err


def test_a_tiny_run_writes_its_outputs_and_resumes_from_its_checkpoints(tmp_path, capsys):
    out, checkpoints = tmp_path / "out", tmp_path / "ckpt"
    common = ["--clients", "4", "--output", str(out), "--checkpoint-dir", str(checkpoints),
              "--no-progress"]
    history, evaluation = mnist.main(common + ["--rounds", "1"])
    printed = capsys.readouterr().out

    assert printed.startswith("Hello, World!\n4 clients, 4000 training examples (by_label "
                              "split), 1000 held out\n")
    # The signatures are formatted over indented lines, not printed as one long line.
    assert "(\n  -> <\n    model=<\n      trainable=<\n        dense/bias=float32[512],\n" \
        in printed
    assert "    {<x=float32[?,784],y=int32[?]>*}@CLIENTS\n" in printed
    assert "\n    <accuracy=float32,loss=float32,num_examples=float32>@SERVER\n" in printed
    assert max(len(line) for line in printed.splitlines() if "@" in line) <= 80
    assert "federated evaluation on held-out digits: <sparse_categorical_accuracy=" in printed

    assert [(r["model"], r["round"], r["clients"]) for r in history] == [
        ("keras", 1, 4), ("custom", 1, 4)]
    keras, custom = history
    assert {"loss", "sparse_categorical_accuracy", "eval/loss",
            "eval/sparse_categorical_accuracy"} <= set(keras)
    assert {"loss", "accuracy", "eval/loss", "eval/accuracy", "eval/num_examples"} <= set(custom)
    assert custom["eval/num_examples"] == 1000.0
    # Held-out evaluation after the last round is the federated evaluation printed, and Keras
    # agrees on the exported weights.
    assert evaluation["federated"]["loss"] == pytest.approx(keras["eval/loss"], rel=1e-6)
    assert evaluation["keras"]["loss"] == pytest.approx(keras["eval/loss"], rel=1e-4)
    assert evaluation["custom_held_out"]["accuracy"] == custom["eval/accuracy"]

    saved = json.loads((out / "metrics.json").read_text())
    assert saved["rounds"] == history and saved["evaluation"] == evaluation
    assert saved["options"]["clients_per_round"] == 4
    rows = read_csv(out / "metrics.csv")
    assert list(rows[0])[:2] == ["model", "round"]
    assert {"eval/loss", "eval/sparse_categorical_accuracy", "eval/accuracy"} <= set(rows[0])
    assert (out / "metrics.png").read_bytes()[:4] == b"\x89PNG"
    for model in mnist.MODELS:  # train_model's own files, per model
        assert read_csv(out / model / "metrics.csv")[0]["round"] == "1"
        assert any(name.startswith("events.out.tfevents.") for name in os.listdir(out / model))
        assert sorted(os.listdir(checkpoints / model)) == ["ckpt_00000.npz", "ckpt_00001.npz"]

    # A second launch with more rounds continues from the checkpoints: round 1 is the one
    # recorded before (its wall time included), only round 2 runs.
    again, _ = mnist.main(common + ["--rounds", "2", "--resume"])
    printed = capsys.readouterr().out
    assert "keras: resuming from the checkpoint of round 1 in " in printed
    assert "custom: resuming from the checkpoint of round 1 in " in printed
    assert printed.count("[from the checkpoint]") == 2
    assert [(r["model"], r["round"]) for r in again] == [
        ("keras", 1), ("keras", 2), ("custom", 1), ("custom", 2)]
    assert again[0] == history[0] and again[2] == history[1]
    assert [r["round"] for r in read_csv(out / "keras" / "metrics.csv")] == ["1", "2"]
    assert json.loads((out / "metrics.json").read_text())["rounds"] == again


def test_a_non_empty_checkpoint_dir_needs_resume(tmp_path, capsys):
    (tmp_path / "ckpt" / "keras").mkdir(parents=True)
    with pytest.raises(SystemExit) as exit_:
        mnist.main(["--checkpoint-dir", str(tmp_path / "ckpt"), "--output", str(tmp_path)])
    assert exit_.value.code == 2
    message = capsys.readouterr().err
    assert "pass --resume to continue that run, or another --checkpoint-dir" in message
    assert not (tmp_path / "metrics.json").exists()


def test_h5_data_is_split_by_writer_with_held_out_writers(tmp_path, capsys):
    h5 = write_h5(tmp_path / "fed_emnist_digitsonly_train.h5", [12, 14, 16, 18, 20, 22])
    history, evaluation = mnist.main(["--data", h5, "--rounds", "1", "--clients-per-round",
                                      "2", "--batch-size", "8", "--output",
                                      str(tmp_path / "out"), "--no-progress"])
    printed = capsys.readouterr().out
    # One writer of six is held out (a tenth, at least one), as TFF's split with the seed.
    from learning.data import ClientData, load_h5_client_data
    _, test = ClientData.train_test_client_split(load_h5_client_data(h5), 1, seed=0)
    held_out = load_h5_client_data(h5).num_examples(test.client_ids[0])
    assert (f"fed_emnist_digitsonly_train.h5: 5 training clients (writers), {held_out} "
            f"held-out examples from 1 held-out client\n") in printed
    assert "federated evaluation on held-out writers:" in printed
    assert [(r["model"], r["round"], r["clients"]) for r in history] == [
        ("keras", 1, 2), ("custom", 1, 2)]
    assert history[1]["eval/num_examples"] == held_out
    assert evaluation["keras"]["loss"] == pytest.approx(evaluation["federated"]["loss"],
                                                        rel=1e-4)
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["options"]["split_name"] == "writer split"


def test_dp_noise_trains_dp_fedavg_and_reports_epsilon(tmp_path, capsys):
    train = write_h5(tmp_path / "train.h5", [10, 11, 12, 13], seed=1)
    test = write_h5(tmp_path / "test.h5", [9, 7], seed=2)
    history, evaluation = mnist.main([
        "--data", train, "--test-data", test, "--rounds", "2", "--clients-per-round", "3",
        "--batch-size", "8", "--dp-noise", "0.2", "--output", str(tmp_path / "out"),
        "--no-progress"])
    printed = capsys.readouterr().out
    expected = [compute_epsilon(0.2, 3, 4, r, 1e-5) for r in (1, 2)]
    assert expected[0] < expected[1]
    assert "keras model: 2 rounds of DP-FedAvg, 3 of 4 clients per round" in printed
    assert "16 held-out examples from the 2 clients of " in printed
    for row in history:
        assert row["epsilon"] == expected[row["round"] - 1]
        assert f"epsilon={row['epsilon']:.4g}  (3 clients" in printed
        assert any(name.endswith("/clip") for name in row)  # the adaptive clip, measured
    assert evaluation["privacy"]["epsilon"] == expected[1]
    assert evaluation["privacy"]["epsilon_both_models"] == compute_epsilon(0.2, 3, 4, 4, 1e-5)
    assert f"privacy: each model is ({expected[1]:.4g}, 1e-05)-DP for each client" in printed
    assert "epsilon" in read_csv(tmp_path / "out" / "metrics.csv")[0]

    # A fixed clip: DifferentiallyPrivateFactory.gaussian_fixed, its clip measured each round.
    history, evaluation = mnist.main([
        "--data", train, "--test-data", test, "--rounds", "1", "--clients-per-round", "2",
        "--batch-size", "8", "--dp-noise", "1.5", "--dp-clip", "0.25", "--dp-delta", "1e-3",
        "--output", str(tmp_path / "fixed"), "--no-progress"])
    capsys.readouterr()
    clips = {v for row in history for k, v in row.items() if k.endswith("/clip")}
    assert clips == {0.25}
    assert evaluation["privacy"]["epsilon"] == compute_epsilon(1.5, 2, 4, 1, 1e-3)
