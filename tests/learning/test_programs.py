"""`learning.programs.train_model`: sampling, exact resumption (after SIGKILL too),
checkpoints that are corrupt, foreign or cannot be written, metrics files, evaluation."""

import collections
import csv
import errno
import glob
import io
import json
import os
import signal
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import tensorflow as tf

import fcore
import learning
from learning import programs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Softmax(learning.Model):
    """Softmax regression from zeros, so every process built from it starts alike."""

    def __init__(self, features=3, classes=2):
        self.features = features
        self.w = tf.Variable(np.zeros((features, classes), np.float32), name="w")
        self.b = tf.Variable(np.zeros(classes, np.float32), name="b")
        self.num_examples = tf.Variable(0.0, trainable=False)
        self.loss_sum = tf.Variable(0.0, trainable=False)
        self.correct = tf.Variable(0.0, trainable=False)

    trainable_variables = property(lambda self: [self.w, self.b])
    non_trainable_variables = property(lambda self: [])
    local_variables = property(lambda self: [self.num_examples, self.loss_sum, self.correct])
    input_spec = property(lambda self: collections.OrderedDict(
        x=tf.TensorSpec([None, self.features], tf.float32), y=tf.TensorSpec([None], tf.int32)))

    def forward_pass(self, batch, training=True):
        logits = tf.matmul(batch["x"], self.w) + self.b
        loss = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(batch["y"], logits))
        predictions = tf.cast(tf.argmax(logits, 1), tf.int32)
        n = tf.cast(tf.shape(batch["y"])[0], tf.float32)
        self.num_examples.assign_add(n)
        self.loss_sum.assign_add(loss * n)
        self.correct.assign_add(
            tf.reduce_sum(tf.cast(tf.equal(predictions, batch["y"]), tf.float32)))
        return learning.BatchOutput(loss=loss, predictions=predictions, num_examples=n)

    def report_local_outputs(self):
        return collections.OrderedDict(num_examples=self.num_examples,
                                       loss=self.loss_sum / self.num_examples,
                                       accuracy=self.correct / self.num_examples)

    @property
    def federated_output_computation(self):
        return aggregate


@fcore.federated_computation
def aggregate(outputs):
    return collections.OrderedDict(
        loss=fcore.federated_mean(outputs.loss, outputs.num_examples),
        accuracy=fcore.federated_mean(outputs.accuracy, outputs.num_examples),
        counts=collections.OrderedDict(examples=fcore.federated_sum(outputs.num_examples)))


class TinyClientData:
    """`count` clients of 8 synthetic examples each, in batches of 4."""

    def __init__(self, count=8, features=3):
        self.client_ids = [f"c{i}" for i in range(count)]
        self.features = features

    def create_tf_dataset_for_client(self, client_id):
        rng = np.random.default_rng(int(client_id[1:]))
        x = rng.normal(size=(8, self.features)).astype(np.float32)
        y = (x[:, 0] > 0).astype(np.int32)
        return tf.data.Dataset.from_tensor_slices(collections.OrderedDict(x=x, y=y)).batch(4)


def build_process(features=3):
    return learning.build_federated_averaging_process(
        lambda: Softmax(features), client_optimizer_fn=lambda: learning.optimizers.SGD(0.5),
        server_optimizer_fn=lambda: learning.optimizers.Adam(0.05))


# The run that the SIGKILL tests stop and resume, and the same run uninterrupted.
RUN = dict(total_rounds=5, clients_per_round=3, seed=7, evaluate_every=2, progress=False)


def run(process, evaluation, checkpoint_dir=None, metrics_dir=None, **changes):
    return programs.train_model(process, TinyClientData(),
                                **{**RUN, "checkpoint_dir": checkpoint_dir,
                                   "metrics_dir": metrics_dir, "evaluation": evaluation,
                                   "evaluation_data": TinyClientData(3), **changes})


def run_until_killed(directory, where, kill_round):
    """The subprocess of the SIGKILL tests: RUN, killed at `where` in round `kill_round`."""
    process = build_process()
    kill = lambda: os.kill(os.getpid(), signal.SIGKILL)  # noqa: E731
    target = f"ckpt_{kill_round:05d}.npz"
    real_replace = os.replace

    def replace(source, destination):
        if where == "replace" and os.path.basename(destination) == target:
            kill()  # the round trained, its checkpoint written in full under a temporary name
        real_replace(source, destination)
        if where == "logged" and os.path.basename(destination) == target:
            kill()  # the checkpoint in place, its round's metrics not yet logged
    os.replace = replace
    run(process, learning.build_federated_evaluation(Softmax),
        os.path.join(directory, "ckpt"), os.path.join(directory, "metrics"))
    raise AssertionError("not killed")


KILLED_SCRIPT = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("programs_test_module", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module.run_until_killed(sys.argv[2], sys.argv[3], int(sys.argv[4]))
"""


@pytest.fixture(scope="module")
def process():
    return build_process()


@pytest.fixture(scope="module")
def evaluation():
    return learning.build_federated_evaluation(Softmax)


@pytest.fixture(scope="module")
def uninterrupted(process, evaluation, tmp_path_factory):
    folder = tmp_path_factory.mktemp("uninterrupted")
    result = run(process, evaluation, folder / "ckpt", folder / "metrics")
    return result, folder


def weights(state):
    """The arrays of a FedAvg state, or of model weights."""
    model = state.model if "model" in state.names() else state
    optimizer = state.optimizer_state if "optimizer_state" in state.names() else []
    return [np.asarray(x) for x in tf.nest.flatten(
        [list(model.trainable), list(model.non_trainable), optimizer])]


def assert_same_weights(a, b):
    for x, y in zip(weights(a), weights(b), strict=True):
        assert x.dtype == y.dtype and np.array_equal(x, y)


def without_seconds(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def csv_rows(path):
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def checkpoints(folder):
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(folder, "ckpt_*.npz")))


def leftovers(folder):
    return [name for name in os.listdir(folder) if name.endswith(".tmp")]


def test_same_seed_same_weights_and_history_another_seed_other_clients(process, evaluation,
                                                                      uninterrupted):
    first = programs.train_model(process, TinyClientData(), total_rounds=3, clients_per_round=3,
                                 seed=1, progress=False)
    again = programs.train_model(process, TinyClientData(), total_rounds=3, clients_per_round=3,
                                 seed=1, progress=False)
    other = programs.train_model(process, TinyClientData(), total_rounds=3, clients_per_round=3,
                                 seed=2, progress=False)
    assert isinstance(first, programs.TrainResult)
    state, history = first
    assert_same_weights(state, again.state)
    assert without_seconds(history) == without_seconds(again.history)
    assert [row["clients"] for row in history] != [row["clients"] for row in other.history]
    assert [row["round"] for row in history] == [1, 2, 3]
    for row in history:
        assert len(set(row["clients"])) == 3 and set(row["clients"]) <= {f"c{i}" for i in range(8)}
        assert list(row) == ["round", "loss", "accuracy", "counts/examples", "clients",
                             "seconds"]
        assert all(type(row[k]) is float for k in ("loss", "accuracy", "counts/examples"))
        assert row["counts/examples"] == 24.0 and row["seconds"] > 0
    assert history[-1]["loss"] < history[0]["loss"]
    # With checkpoints and evaluation, the same seed gives the same run too.
    result, _ = uninterrupted
    repeat = run(process, evaluation)
    assert_same_weights(result.state, repeat.state)
    assert without_seconds(result.history) == without_seconds(repeat.history)


def test_arguments_are_checked_before_any_work(process, tmp_path):
    data = TinyClientData()
    folder = tmp_path / "ckpt"

    def call(**changes):
        arguments = dict(total_rounds=2, clients_per_round=2, checkpoint_dir=folder,
                         progress=False)
        return programs.train_model(process, data, **{**arguments, **changes})

    for changes, message in [
            (dict(clients_per_round=0), r"clients_per_round must be >= 1, found 0"),
            (dict(clients_per_round=9), r"clients_per_round must be in 1\.\.8 \(train_data has "
                                        r"8 clients\), found 9"),
            (dict(total_rounds=-1), r"total_rounds must be >= 0, found -1"),
            (dict(evaluate_every=0), r"evaluate_every must be >= 1, found 0"),
            (dict(seed=-3), r"seed must be >= 0"),
            (dict(evaluation=lambda state, data: {}), r"evaluation needs evaluation_data"),
            (dict(evaluation_data=[]), r"evaluation_data given without an evaluation")]:
        with pytest.raises(ValueError, match=message):
            call(**changes)
    with pytest.raises(TypeError, match="total_rounds must be an integer, found 2.5"):
        call(total_rounds=2.5)
    with pytest.raises(TypeError, match="train_data must be a ClientData"):
        programs.train_model(process, [[1]], total_rounds=1, clients_per_round=1)
    with pytest.raises(TypeError, match="process must be an iterative process"):
        programs.train_model(object(), data, total_rounds=1, clients_per_round=1)
    with pytest.raises(TypeError, match="evaluation computation takes"):
        call(evaluation=aggregate_of_floats, evaluation_data=[])
    assert not folder.exists()
    # Zero rounds: the initial state, an empty history (and the initial checkpoint).
    state, history = call(total_rounds=0)
    assert history == [] and checkpoints(folder) == ["ckpt_00000.npz"]
    assert_same_weights(state, process.initialize())


@fcore.federated_computation(fcore.FederatedType(fcore.to_type(np.float32), fcore.SERVER),
                             fcore.FederatedType(fcore.to_type(np.float32), fcore.CLIENTS))
def aggregate_of_floats(server, clients):
    return server


@pytest.mark.parametrize("where", ["replace", "logged"])
def test_resume_after_sigkill_equals_the_uninterrupted_run(where, process, evaluation,
                                                            uninterrupted, tmp_path):
    script = tmp_path / "killed.py"
    script.write_text(KILLED_SCRIPT)
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    killed = subprocess.run([sys.executable, str(script), os.path.abspath(__file__),
                             str(tmp_path), where, "3"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    folder = tmp_path / "ckpt"
    expected = {"replace": ["ckpt_00000.npz", "ckpt_00001.npz", "ckpt_00002.npz"],
                "logged": ["ckpt_00000.npz", "ckpt_00001.npz", "ckpt_00002.npz",
                           "ckpt_00003.npz"]}[where]
    assert checkpoints(folder) == expected
    assert bool(leftovers(folder)) == (where == "replace")

    resumed = run(process, evaluation, folder, tmp_path / "metrics")
    result, reference = uninterrupted
    assert_same_weights(resumed.state, result.state)
    assert without_seconds(resumed.history) == without_seconds(result.history)
    assert checkpoints(folder) == ["ckpt_00003.npz", "ckpt_00004.npz", "ckpt_00005.npz"]
    assert leftovers(folder) == []
    assert csv_rows(tmp_path / "metrics" / "metrics.csv") == csv_rows(
        reference / "metrics" / "metrics.csv")
    assert {(s, t): v for s, t, v in scalars(tmp_path / "metrics")} == {
        (s, t): v for s, t, v in scalars(reference / "metrics")}


def _manifest(path):
    with np.load(path, allow_pickle=False) as archive:
        return archive["manifest"].tobytes().decode("utf-8")


def test_resuming_in_process_continues_exactly_and_keeps_three_checkpoints(process, tmp_path):
    arguments = dict(clients_per_round=3, seed=5, checkpoint_dir=tmp_path, progress=False)
    whole = programs.train_model(process, TinyClientData(), total_rounds=6, **{
        **arguments, "checkpoint_dir": None})
    part = programs.train_model(process, TinyClientData(), total_rounds=3, **arguments)
    assert checkpoints(tmp_path) == ["ckpt_00001.npz", "ckpt_00002.npz", "ckpt_00003.npz"]
    resumed = programs.train_model(process, TinyClientData(), total_rounds=6, **arguments)
    assert_same_weights(resumed.state, whole.state)
    assert without_seconds(resumed.history) == without_seconds(whole.history)
    assert resumed.history[:3] == part.history  # restored as recorded, seconds included
    assert checkpoints(tmp_path) == ["ckpt_00004.npz", "ckpt_00005.npz", "ckpt_00006.npz"]
    assert leftovers(tmp_path) == []
    # A finished run returns what it recorded without training again.
    done = programs.train_model(process, TinyClientData(), total_rounds=6, **arguments)
    assert done.history == resumed.history
    assert_same_weights(done.state, resumed.state)
    with pytest.raises(programs.CheckpointError,
                       match=r"ckpt_00006\.npz is at round 6, past total_rounds=4"):
        programs.train_model(process, TinyClientData(), total_rounds=4, **arguments)


def _flip_last_byte_of(path, member):
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    with open(path, "r+b") as f:
        f.seek(info.header_offset)
        header = f.read(30)
        start = info.header_offset + 30 + int.from_bytes(header[26:28], "little") + \
            int.from_bytes(header[28:30], "little")
        f.seek(start + info.compress_size - 1)
        byte = f.read(1)
        f.seek(start + info.compress_size - 1)
        f.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize("damage", ["truncated", "flipped", "empty"])
def test_a_corrupt_newest_checkpoint_is_skipped_with_a_warning(damage, process, tmp_path):
    arguments = dict(clients_per_round=3, seed=4, checkpoint_dir=tmp_path, progress=False)
    whole = programs.train_model(process, TinyClientData(), total_rounds=5, **{
        **arguments, "checkpoint_dir": None})
    programs.train_model(process, TinyClientData(), total_rounds=4, **arguments)
    newest = tmp_path / "ckpt_00004.npz"
    if damage == "truncated":
        newest.write_bytes(newest.read_bytes()[:newest.stat().st_size // 2])
    elif damage == "flipped":
        _flip_last_byte_of(newest, "leaf_0.npy")
    else:
        newest.write_bytes(b"")
    with pytest.warns(RuntimeWarning, match=r"skipping the corrupt checkpoint .*ckpt_00004\.npz"):
        resumed = programs.train_model(process, TinyClientData(), total_rounds=5, **arguments)
    assert_same_weights(resumed.state, whole.state)
    assert without_seconds(resumed.history) == without_seconds(whole.history)
    assert checkpoints(tmp_path) == ["ckpt_00003.npz", "ckpt_00004.npz", "ckpt_00005.npz"]


def test_no_valid_checkpoint_left_is_an_error(process, tmp_path):
    arguments = dict(total_rounds=2, clients_per_round=3, checkpoint_dir=tmp_path,
                     progress=False)
    programs.train_model(process, TinyClientData(), **arguments)
    for name in checkpoints(tmp_path):
        (tmp_path / name).write_bytes(b"PK\x03\x04 not really")
    before = {name: (tmp_path / name).read_bytes() for name in checkpoints(tmp_path)}
    with pytest.warns(RuntimeWarning), pytest.raises(
            programs.CheckpointError, match=r"no valid checkpoint in .*ckpt_00002\.npz: not a "
                                            r"readable \.npz archive"):
        programs.train_model(process, TinyClientData(), **arguments)
    assert {name: (tmp_path / name).read_bytes() for name in checkpoints(tmp_path)} == before


def test_checkpoints_of_another_model_process_or_run_are_refused(process, tmp_path):
    arguments = dict(total_rounds=4, clients_per_round=3, seed=1, checkpoint_dir=tmp_path,
                     progress=False)
    programs.train_model(process, TinyClientData(), **{**arguments, "total_rounds": 2})
    before = {name: (tmp_path / name).read_bytes() for name in checkpoints(tmp_path)}

    with pytest.raises(programs.CheckpointError,
                       match=r"checkpoint .*ckpt_00002\.npz: state leaf model/trainable/0 has "
                             r"shape \(3, 2\), this process has \(4, 2\)"):
        programs.train_model(build_process(features=4), TinyClientData(features=4),
                             **arguments)
    with pytest.raises(programs.CheckpointError,
                       match=r"ckpt_00002\.npz: it was written with seed=1, this call has "
                             r"seed=2"):
        programs.train_model(process, TinyClientData(), **{**arguments, "seed": 2})
    with pytest.raises(programs.CheckpointError, match=r"clients_per_round=3, this call has "
                                                       r"clients_per_round=2"):
        programs.train_model(process, TinyClientData(), **{**arguments,
                                                           "clients_per_round": 2})
    with pytest.raises(programs.CheckpointError, match=r"other client ids \(8 clients\), this "
                                                       r"call's train_data has 9 clients"):
        programs.train_model(process, TinyClientData(9), **arguments)

    # The same state from a process of another type (its fingerprint differs).
    manifest = json.loads(_manifest(tmp_path / "ckpt_00002.npz"))
    manifest["type_signature"] = "(<S@SERVER,{int32*}@CLIENTS> -> <S@SERVER,<>@SERVER>)"
    manifest["fingerprint"] = "0" * 64
    manifest["round"] = 3
    manifest["history"].append({**manifest["history"][-1], "round": 3})
    with np.load(tmp_path / "ckpt_00002.npz", allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays["manifest"] = np.frombuffer(json.dumps(manifest).encode(), np.uint8)
    np.savez(tmp_path / "ckpt_00003.npz", **arrays)
    with pytest.raises(programs.CheckpointError,
                       match=r"ckpt_00003\.npz: it was written by a process of type \(<S@SERVER,"
                             r"\{int32\*\}@CLIENTS>.*, this process has type \(<<model="):
        programs.train_model(process, TinyClientData(), **arguments)
    os.unlink(tmp_path / "ckpt_00003.npz")

    # An .npz that is not a checkpoint at all.
    np.savez(tmp_path / "ckpt_00007.npz", weights=np.zeros(3))
    with pytest.raises(programs.CheckpointError,
                       match=r"ckpt_00007\.npz: not a checkpoint of train_model \(no 'manifest'"):
        programs.train_model(process, TinyClientData(), **arguments)
    os.unlink(tmp_path / "ckpt_00007.npz")
    assert {name: (tmp_path / name).read_bytes() for name in checkpoints(tmp_path)} == before


@pytest.mark.parametrize("failing", ["replace", "write"])
def test_a_failed_checkpoint_write_fails_the_run_and_keeps_the_previous_one(
        failing, process, tmp_path, monkeypatch):
    arguments = dict(total_rounds=4, clients_per_round=3, seed=3, checkpoint_dir=tmp_path,
                     progress=False)
    full = OSError(errno.ENOSPC, "No space left on device")
    if failing == "replace":
        real_replace = os.replace

        def replace(source, destination):
            if os.path.basename(destination) == "ckpt_00003.npz":
                raise full
            real_replace(source, destination)
        monkeypatch.setattr(os, "replace", replace)
    else:
        real_savez, calls = np.savez, []

        def savez(file, **arrays):
            calls.append(1)
            if len(calls) == 4:  # rounds 0, 1, 2, then 3
                file.write(b"PK\x03\x04 half a checkpoint")
                raise full
            real_savez(file, **arrays)
        monkeypatch.setattr(np, "savez", savez)
    with pytest.raises(OSError) as info:
        programs.train_model(process, TinyClientData(), **arguments)
    assert info.value is full
    monkeypatch.undo()
    assert checkpoints(tmp_path) == ["ckpt_00000.npz", "ckpt_00001.npz", "ckpt_00002.npz"]
    assert leftovers(tmp_path) == []
    assert json.loads(_manifest(tmp_path / "ckpt_00002.npz"))["round"] == 2
    resumed = programs.train_model(process, TinyClientData(), **arguments)
    whole = programs.train_model(process, TinyClientData(), **{**arguments,
                                                               "checkpoint_dir": None})
    assert_same_weights(resumed.state, whole.state)
    assert without_seconds(resumed.history) == without_seconds(whole.history)


def test_the_checkpoint_format_is_an_npz_with_a_json_manifest(process, tmp_path):
    result = programs.train_model(process, TinyClientData(), total_rounds=2,
                                  clients_per_round=2, seed=9, checkpoint_dir=tmp_path,
                                  progress=False)
    with np.load(tmp_path / "ckpt_00002.npz", allow_pickle=False) as archive:
        files = sorted(archive.files)
        manifest = json.loads(archive["manifest"].tobytes().decode("utf-8"))
        leaves = [archive[f"leaf_{i}"] for i in range(len(files) - 1)]
    assert files == ["leaf_0", "leaf_1", "leaf_2", "leaf_3", "leaf_4", "leaf_5", "leaf_6",
                     "manifest"]
    assert manifest["format"] == programs.FORMAT and manifest["version"] == 1
    assert manifest["round"] == 2 and manifest["seed"] == 9
    assert manifest["clients_per_round"] == 2 and manifest["client_ids"]["count"] == 8
    assert manifest["type_signature"] == str(process.next.type_signature)
    assert manifest["history"] == result.history
    assert manifest["sampler"]["bit_generator"] == "PCG64"
    state = manifest["state"]
    assert state["kind"] == "struct" and [n for n, _ in state["items"]] == [
        "model", "optimizer_state"]
    step = state["items"][1][1]["items"][0][1]
    assert step == {"kind": "leaf", "python": "numpy", "dtype": "<i8", "shape": [],
                    "sha256": step["sha256"]}
    for leaf, value in zip(leaves, weights(result.state), strict=True):
        assert np.array_equal(leaf, value)


def scalars(folder):
    """(step, tag, value) of every scalar in the event files of `folder`."""
    found = []
    for path in sorted(glob.glob(os.path.join(folder, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                assert value.metadata.plugin_data.plugin_name == "scalars"
                found.append((event.step, value.tag, float(tf.make_ndarray(value.tensor))))
    return found


def test_metrics_go_to_csv_and_tensorboard_and_the_csv_follows_the_history(
        process, evaluation, tmp_path):
    metrics = tmp_path / "metrics"
    arguments = dict(total_rounds=3, clients_per_round=3, evaluate_every=2,
                     checkpoint_dir=tmp_path / "ckpt", metrics_dir=metrics,
                     evaluation=evaluation, evaluation_data=TinyClientData(2), progress=False)
    state, history = programs.train_model(process, TinyClientData(), **arguments)
    with open(metrics / "metrics.csv", newline="") as f:
        rows = list(csv.reader(f))
    names = ["loss", "accuracy", "counts/examples", "eval/loss", "eval/accuracy",
             "eval/counts/examples"]
    assert rows[0] == ["round", *names, "seconds", "clients"]
    assert len(rows) == 4
    for row, recorded in zip(rows[1:], history, strict=True):
        assert int(row[0]) == recorded["round"] and float(row[-2]) == recorded["seconds"]
        assert row[-1] == " ".join(recorded["clients"])
        for name, cell in zip(names, row[1:-2]):
            assert cell == ("" if name not in recorded else repr(recorded[name]))
    assert [row[4] == "" for row in rows[1:]] == [True, False, False]

    events = scalars(metrics)
    expected = [(row["round"], name, float(np.float32(row[name])))
                for row in history for name in names if name in row]
    assert sorted(events) == sorted(expected)

    # Rows the history does not hold (a run stopped after logging them) are dropped.
    with open(metrics / "metrics.csv", "a") as f:
        f.write("4,1,1,1,,,,1,c0 c1 c2\n")
    again = programs.train_model(process, TinyClientData(), **arguments)
    assert again.history == history
    with open(metrics / "metrics.csv", newline="") as f:
        assert list(csv.reader(f)) == rows


def test_evaluation_every_k_rounds_and_after_the_last(process, evaluation):
    calls = []

    def evaluate(state, data):
        calls.append((state, data))
        return fcore.Struct([("mean_w", np.mean(state.model.trainable[0])),
                             ("per_class", state.model.trainable[1])])

    eval_data = TinyClientData(3)
    for function in (evaluate, evaluation):
        state, history = programs.train_model(
            process, TinyClientData(), total_rounds=5, clients_per_round=2, seed=2,
            evaluation=function, evaluation_data=eval_data, evaluate_every=2, progress=False)
        evaluated = [row["round"] for row in history if any(k.startswith("eval/") for k in row)]
        assert evaluated == [2, 4, 5]
    assert len(calls) == 3
    last_state, data = calls[-1]
    assert_same_weights(last_state, state)
    assert isinstance(data, list) and len(data) == 3
    assert all(isinstance(d, tf.data.Dataset) for d in data)
    # The computation of model weights was given state.model and all evaluation clients.
    direct = evaluation(state.model, data)
    assert history[-1]["eval/loss"] == float(direct["loss"])
    assert history[-1]["eval/counts/examples"] == 24.0
    # A list as evaluation_data is passed as it is; nested and array metrics are flattened.
    _, history = programs.train_model(
        process, TinyClientData(), total_rounds=2, clients_per_round=2, evaluation=evaluate,
        evaluation_data=["as", "given"], progress=False)
    assert calls[-1][1] == ["as", "given"]
    assert [k for k in history[-1] if k.startswith("eval/")] == [
        "eval/mean_w", "eval/per_class/0", "eval/per_class/1"]


def test_learning_processes_and_evaluation_processes(tmp_path):
    algorithms = learning.algorithms
    process = algorithms.build_weighted_fed_avg(
        Softmax, client_optimizer_fn=lambda: learning.optimizers.SGD(0.5))
    arguments = dict(total_rounds=3, clients_per_round=2, seed=6, progress=False,
                     evaluation=algorithms.build_fed_eval(Softmax),
                     evaluation_data=TinyClientData(2))
    whole = programs.train_model(process, TinyClientData(), **arguments)
    programs.train_model(process, TinyClientData(), checkpoint_dir=tmp_path,
                         **{**arguments, "total_rounds": 2})
    resumed = programs.train_model(process, TinyClientData(), checkpoint_dir=tmp_path,
                                   **arguments)
    assert_same_weights(resumed.state.global_model_weights, whole.state.global_model_weights)
    assert np.array_equal(resumed.state.finalizer[0], whole.state.finalizer[0])
    assert without_seconds(resumed.history) == without_seconds(whole.history)
    last = whole.history[-1]
    assert "client_work/train/loss" in last
    weights_now = process.get_model_weights(whole.state)
    direct = learning.build_federated_evaluation(Softmax)(
        weights_now, [TinyClientData(2).create_tf_dataset_for_client(c) for c in ("c0", "c1")])
    assert last["eval/client_work/eval/current_round_metrics/loss"] == float(direct["loss"])
    # A computation of model weights gets process.get_model_weights(state).
    _, history = programs.train_model(process, TinyClientData(), **{
        **arguments, "evaluation": learning.build_federated_evaluation(Softmax)})
    assert history[-1]["eval/loss"] == float(direct["loss"])


def test_metrics_are_flattened_to_floats_with_slash_names():
    metrics = fcore.Struct([("loss", np.float32(0.5)),
                            ("nested", collections.OrderedDict(a=np.int64(3), b=[1, 2.5])),
                            (None, np.array([[1, 2]], np.int32))])
    flat = programs._flatten_metrics(metrics, "eval")
    assert flat == {"eval/loss": 0.5, "eval/nested/a": 3.0, "eval/nested/b/0": 1.0,
                    "eval/nested/b/1": 2.5, "eval/2/0/0": 1.0, "eval/2/0/1": 2.0}
    assert all(type(v) is float for v in flat.values())
    with pytest.raises(TypeError, match="metric 'x' is not a number"):
        programs._flatten_metrics({"x": "text"})


Pair = collections.namedtuple("Pair", "first second")


def test_state_structures_round_trip_and_differences_are_named():
    state = fcore.Struct([
        ("weights", collections.OrderedDict(w=np.ones((2, 3), np.float32), b=np.float64(2.0))),
        ("opt", (np.int64(4), [np.zeros(2, np.float32), 3, 1.5, True])),
        ("pair", Pair(np.array(5, np.int32), {"k": np.arange(3)})),
        (None, np.array(["ab", "c"]))])
    leaves = []
    tree = programs._describe(state, "", leaves)
    json.dumps(tree)  # plain JSON
    back = programs._rebuild(json.loads(json.dumps(tree)), state, iter(leaves))
    assert programs._describe(back, "", []) == tree
    assert type(back.pair) is Pair and type(back.weights) is collections.OrderedDict
    assert type(back.opt[0]) is np.int64 and back.opt[1][1:] == [3, 1.5, True]
    assert [type(x) for x in back.opt[1][1:]] == [int, float, bool]
    assert back.pair.first.shape == () and isinstance(back.pair.first, np.ndarray)
    assert programs._difference(tree, tree, "") is None

    other = fcore.Struct([
        ("weights", collections.OrderedDict(w=np.ones((2, 3), np.float64), b=np.float64(2.0))),
        *list(state.items())[1:]])
    assert programs._difference(programs._describe(other, "", []), tree, "") == (
        "state leaf weights/w has dtype float64, this process has float32")
    renamed = fcore.Struct([("model", state.weights), *list(state.items())[1:]])
    assert programs._difference(programs._describe(renamed, "", []), tree, "") == (
        "the state has 4 elements (model, opt, pair, _), this process has 4 "
        "(weights, opt, pair, _)")
    with pytest.raises(TypeError, match="cannot checkpoint the state leaf x"):
        programs._describe({"x": np.array([object()])}, "", [])


def test_progress_bar_shows_rounds_and_metrics_and_false_prints_nothing(process, capfd,
                                                                        monkeypatch):
    programs.train_model(process, TinyClientData(), total_rounds=2, clients_per_round=2,
                         progress=False)
    assert capfd.readouterr() == ("", "")

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    programs.train_model(process, TinyClientData(), total_rounds=2, clients_per_round=2)
    shown = terminal.getvalue()
    assert "2/2" in shown and "loss=" in shown and "accuracy=" in shown
    assert capfd.readouterr().out == ""


def test_learning_exposes_programs():
    assert learning.programs is programs
