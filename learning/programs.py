"""Research training programs: run an iterative process for many rounds, with client
sampling, checkpoints, evaluation, metrics files and a progress bar.

    result = train_model(process, train_data, total_rounds=100, clients_per_round=10,
                         checkpoint_dir="ckpt", metrics_dir="metrics")
    state, history = result

Everything random is drawn from one `numpy.random.Generator` seeded by `seed` (the clients
of each round), and its state is saved in every checkpoint, so a run stopped at any moment
(SIGKILL included) and started again with the same arguments ends with the same state and
the same history as a run that was never stopped.

A checkpoint is one file, `ckpt_<round>.npz`: a NumPy `.npz` archive (read back with
`allow_pickle=False`) holding the state's arrays as `leaf_<i>` and a JSON manifest
(`manifest`, UTF-8 bytes as uint8) that describes the state's structure (containers, names,
dtypes, shapes and a SHA-256 of each array), the round, the sampler's state, the metrics
history, the arguments that decide the clients (seed, clients_per_round, client ids) and the
process's type signature. Files are written to a temporary name, flushed, fsynced and
renamed; the directory is fsynced; the newest three are kept."""

from __future__ import annotations

import collections
import collections.abc
import contextlib
import csv
import errno
import hashlib
import io
import json
import os
import re
import secrets
import sys
import time
import warnings
import zipfile

import numpy as np

import fcore

__all__ = ["CheckpointError", "TrainResult", "train_model"]

FORMAT = "learning.programs checkpoint"
VERSION = 1
KEEP_CHECKPOINTS = 3
MANIFEST = "manifest"

_CHECKPOINT_NAME = re.compile(r"^ckpt_(\d{5,})\.npz$")
_TEMPORARY_NAME = re.compile(r"^\.ckpt_\d{5,}\.npz\.[0-9a-f]+\.tmp$")
_FIXED_COLUMNS = ("round", "clients", "seconds")


class TrainResult(collections.namedtuple("TrainResult", ["state", "history"])):
    """What `train_model` returns: the final `state` and the `history`, one dict per round
    (`round`, the training metrics, `eval/...` metrics in evaluated rounds, `clients`,
    `seconds`). Unpacks as `state, history = result`."""

    __slots__ = ()


class CheckpointError(ValueError):
    """A checkpoint that cannot be used for this call: foreign, from another process or
    model, written with other arguments, or no valid checkpoint left."""


class _Corrupt(Exception):
    """A checkpoint file that cannot be read back whole (truncated, bad checksum)."""


def train_model(process, train_data, *, total_rounds, clients_per_round, seed=0,
                checkpoint_dir=None, evaluation=None, evaluation_data=None, evaluate_every=1,
                metrics_dir=None, progress=True):
    """Runs `process` for `total_rounds` rounds on clients sampled from `train_data`.

    `process` is an `fcore.IterativeProcess` (`state = process.initialize()`, `state,
    metrics = process.next(state, client_datasets)`; a result of more than two parts, or a
    `LearningProcessOutput`, is unpacked by position). `train_data` has `client_ids` and
    `create_tf_dataset_for_client(id)`; each round `clients_per_round` distinct ids are drawn
    by a `numpy.random.Generator` seeded with `seed`.

    `evaluation(state, evaluation_data)` returns metrics (a struct, a mapping, or nested ones),
    recorded as `eval/<name>`; it runs after every `evaluate_every`-th round and after the
    last. An fcore computation whose first parameter is the process's model weights, such
    as `learning.build_federated_evaluation(model_fn)`, is called with the model weights
    instead (`process.get_model_weights(state)`, or `state.model`); an evaluation process
    (`learning.algorithms.build_fed_eval(model_fn)`) is run on its initial state with those
    weights set, and its metrics recorded. A `ClientData` as `evaluation_data` is passed as
    the list of all its clients' datasets; anything else is passed as it is.

    With `checkpoint_dir`, the state, round, sampler state and history are saved after every
    round (and the initial state as round 0), and a later call with the same arguments resumes
    from the newest valid checkpoint (a corrupt one is skipped with a warning). A checkpoint of
    another model, process or seed raises `CheckpointError` saying what differs.

    With `metrics_dir`, each round's metrics go to `metrics.csv` and to TensorBoard event
    files. `progress=True` shows a tqdm bar on stderr when it is a terminal.

    Returns `TrainResult(state, history)`; `history` has one dict per round with `round`, the
    training metrics (flattened to `a/b` names, Python floats), `eval/...` metrics in evaluated
    rounds, `clients` (the sampled ids) and `seconds` (wall time of the round)."""
    client_ids = _check_arguments(process, train_data, total_rounds, clients_per_round, seed,
                                  evaluation, evaluation_data, evaluate_every)
    total_rounds, clients_per_round = int(total_rounds), int(clients_per_round)
    seed, evaluate_every = int(seed), int(evaluate_every)
    evaluate = _evaluation_caller(evaluation, process)
    evaluation_data = _evaluation_datasets(evaluation_data) if evaluate else None
    identity = _Identity(process, client_ids, seed, clients_per_round)

    rng = np.random.default_rng(seed)
    template = process.initialize()
    state, start, history = template, 0, []
    checkpoints = None
    if checkpoint_dir is not None:
        checkpoints = _Checkpoints(os.fspath(checkpoint_dir), identity)
        restored = checkpoints.restore(template)
        if restored is None:
            checkpoints.save(0, state, rng, history)
        else:
            state, start, sampler, history = restored
            if start > total_rounds:
                raise CheckpointError(f"checkpoint {checkpoints.path(start)} is at round "
                                      f"{start}, past total_rounds={total_rounds}.")
            rng.bit_generator.state = sampler

    log = _MetricsLog(os.fspath(metrics_dir), history, resumed=start > 0) \
        if metrics_dir is not None else None
    bar = _progress_bar(progress, total_rounds, start)
    try:
        for round_num in range(start + 1, total_rounds + 1):
            began = time.perf_counter()
            chosen = rng.choice(len(client_ids), size=clients_per_round, replace=False)
            ids = [client_ids[i] for i in chosen]
            datasets = [train_data.create_tf_dataset_for_client(i) for i in ids]
            new_state, metrics = _unpack(process, process.next(state, datasets))
            row = {"round": round_num}
            _merge(row, _flatten_metrics(metrics), "training")
            if evaluate is not None and (round_num % evaluate_every == 0
                                         or round_num == total_rounds):
                _merge(row, _flatten_metrics(evaluate(new_state, evaluation_data), "eval"),
                       "evaluation")
            row["clients"] = [_plain_id(i) for i in ids]
            row["seconds"] = time.perf_counter() - began
            state = new_state
            history.append(row)
            if checkpoints is not None:
                checkpoints.save(round_num, state, rng, history)
            if log is not None:
                log.add(row, history)
            if bar is not None:
                bar.set_postfix(_main_metrics(row), refresh=False)
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        if log is not None:
            log.close()
    return TrainResult(state, history)


# Arguments.

def _check_arguments(process, train_data, total_rounds, clients_per_round, seed, evaluation,
                     evaluation_data, evaluate_every):
    """Checks everything before any work; returns the client ids as a list."""
    for name in ("initialize", "next"):
        if not callable(getattr(process, name, None)):
            raise TypeError(f"train_model: process must be an iterative process with "
                            f"initialize() and next(state, data), found "
                            f"{type(process).__name__}.")
    if not (hasattr(train_data, "client_ids")
            and callable(getattr(train_data, "create_tf_dataset_for_client", None))):
        raise TypeError(f"train_model: train_data must be a ClientData (client_ids and "
                        f"create_tf_dataset_for_client(id)), found {type(train_data).__name__}.")
    client_ids = list(train_data.client_ids)
    try:
        distinct = len(set(client_ids)) == len(client_ids)
    except TypeError:
        distinct = len(set(map(repr, client_ids))) == len(client_ids)
    if not distinct:
        raise ValueError("train_model: train_data.client_ids has duplicates.")
    _check_int("total_rounds", total_rounds, 0)
    _check_int("seed", seed, 0)
    _check_int("evaluate_every", evaluate_every, 1)
    _check_int("clients_per_round", clients_per_round, 1)
    if not client_ids:
        raise ValueError("train_model: train_data has no clients.")
    if clients_per_round > len(client_ids):
        raise ValueError(f"train_model: clients_per_round must be in 1..{len(client_ids)} "
                         f"(train_data has {len(client_ids)} clients), found "
                         f"{clients_per_round}.")
    if evaluation is not None and not callable(evaluation) and not callable(
            getattr(evaluation, "next", None)):
        raise TypeError(f"train_model: evaluation must be a function, a computation or an "
                        f"evaluation process, found {type(evaluation).__name__}.")
    if evaluation is not None and evaluation_data is None:
        raise ValueError("train_model: evaluation needs evaluation_data.")
    if evaluation is None and evaluation_data is not None:
        raise ValueError("train_model: evaluation_data given without an evaluation.")
    return client_ids


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"train_model: {name} must be an integer, found {value!r}.")
    if value < minimum:
        raise ValueError(f"train_model: {name} must be >= {minimum}, found {value}.")


def _plain_id(client_id):
    """A client id as JSON keeps it: str and int as they are, anything else as its str."""
    if isinstance(client_id, str):
        return str(client_id)
    if isinstance(client_id, (int, np.integer)) and not isinstance(client_id, bool):
        return int(client_id)
    return str(client_id)


def _unpack(process, output):
    """(state, metrics) from what `next` returned; a process whose next returns only the
    state has no metrics."""
    result_type = getattr(getattr(process.next, "type_signature", None), "result", None)
    state_type = getattr(process, "state_type", None)
    if result_type is not None and state_type is not None and \
            result_type.is_assignable_from(state_type):
        return output, {}
    if isinstance(output, (tuple, list, fcore.Struct)) and len(output) >= 2:
        return output[0], output[1]
    raise TypeError(f"train_model: process.next must return (state, metrics), found "
                    f"{type(output).__name__}.")


# Evaluation.

def _evaluation_caller(evaluation, process):
    """`evaluate(state, data)` -> metrics, from what was given as `evaluation`."""
    if evaluation is None:
        return None
    weights_of, weights_type = _model_weights(process)
    if all(callable(getattr(evaluation, name, None))
           for name in ("initialize", "next", "set_model_weights")):
        # An evaluation process (learning.algorithms.build_fed_eval): TFF's pattern.
        if weights_of is None:
            raise TypeError("train_model: an evaluation process needs a process whose state "
                            "holds model weights (get_model_weights, or state.model).")
        initial = evaluation.initialize()

        def evaluate(state, data):
            weights = weights_of(state)
            return _unpack(evaluation, evaluation.next(
                evaluation.set_model_weights(initial, weights), data))[1]
        return evaluate
    if not isinstance(evaluation, fcore.Computation):
        return evaluation
    parameter = evaluation.type_signature.parameter
    if not (isinstance(parameter, fcore.StructType) and len(parameter) == 2):
        raise TypeError(f"train_model: an evaluation computation must take (state or model "
                        f"weights, data), found {evaluation.type_signature}.")
    first = parameter[0]
    state_type = getattr(process, "state_type", None)
    if state_type is None or _accepts(first, state_type):
        return evaluation
    if weights_type is not None and _accepts(first, weights_type):
        return lambda state, data: evaluation(weights_of(state), data)
    raise TypeError(f"train_model: the evaluation computation takes {first} first, which is "
                    f"neither the process state ({state_type}) nor its model weights.")


def _model_weights(process):
    """(function from a state to its model weights, their type), or (None, None)."""
    getter = getattr(process, "get_model_weights", None)
    if isinstance(getter, fcore.Computation):
        return getter, getter.type_signature.result
    state_type = getattr(process, "state_type", None)
    member = state_type.member if isinstance(state_type, fcore.FederatedType) else state_type
    if isinstance(member, fcore.StructType) and member.index_of("model") is not None:
        return (lambda state: state.model), member["model"]
    return None, None


def _accepts(parameter, value_type):
    candidates = [value_type]
    if isinstance(value_type, fcore.FederatedType):
        candidates.append(value_type.member)
    else:
        candidates.append(fcore.FederatedType(value_type, fcore.SERVER))
    return any(parameter.is_assignable_from(t) for t in candidates)


def _evaluation_datasets(data):
    """A ClientData becomes the list of all its clients' datasets."""
    if hasattr(data, "client_ids") and callable(
            getattr(data, "create_tf_dataset_for_client", None)):
        return [data.create_tf_dataset_for_client(c) for c in data.client_ids]
    return data


# Metrics.

def _flatten_metrics(metrics, prefix=""):
    """An ordered dict of `a/b` names to Python floats; arrays give one entry per element."""
    flat = collections.OrderedDict()

    def put(name, value):
        if name in flat:
            raise ValueError(f"train_model: two metrics are both named {name!r}.")
        flat[name] = value

    def walk(value, name):
        if isinstance(value, fcore.Struct):
            for index, (key, child) in enumerate(value.items()):
                walk(child, _join(name, key if key is not None else str(index)))
        elif isinstance(value, collections.abc.Mapping):
            for key, child in value.items():
                walk(child, _join(name, str(key)))
        elif _is_namedtuple(value):
            for key, child in zip(value._fields, value):
                walk(child, _join(name, key))
        elif isinstance(value, (tuple, list)):
            for index, child in enumerate(value):
                walk(child, _join(name, str(index)))
        else:
            array = np.asarray(value)
            if array.dtype.kind not in "biuf":
                raise TypeError(f"train_model: metric {name or 'value'!r} is not a number "
                                f"({array.dtype}).")
            if array.ndim == 0:
                put(name or "value", float(array))
            else:
                for index in np.ndindex(array.shape):
                    put(_join(name, "/".join(map(str, index))), float(array[index]))

    walk(metrics, prefix)
    return flat


def _join(path, name):
    return f"{path}/{name}" if path else name


def _merge(row, metrics, what):
    for name, value in metrics.items():
        if name in row or name in _FIXED_COLUMNS:
            raise ValueError(f"train_model: the {what} metric {name!r} clashes with another "
                             f"entry of the history.")
        row[name] = value


def _metric_names(row):
    return [name for name in row if name not in _FIXED_COLUMNS]


def _main_metrics(row):
    names = [n for n in _metric_names(row)
             if n.rsplit("/", 1)[-1] == "loss" or "accuracy" in n.rsplit("/", 1)[-1]]
    names = names[:4] or _metric_names(row)[:2]
    return collections.OrderedDict((n, f"{row[n]:.4g}") for n in names)


def _progress_bar(progress, total_rounds, start):
    if not progress:
        return None
    import tqdm
    return tqdm.tqdm(total=total_rounds, initial=start, unit="round", desc="training",
                     file=sys.stderr, disable=None, dynamic_ncols=True)


class _MetricsLog:
    """`metrics.csv` (rewritten from the history when the run starts and when a new metric
    appears, appended to otherwise) and TensorBoard scalars, flushed every round."""

    def __init__(self, directory, history, resumed):
        import tensorflow as tf
        from tensorflow.core.framework import summary_pb2
        os.makedirs(directory, exist_ok=True)
        self._tf = tf
        # What tf.summary.scalar attaches (TensorBoard's scalars plugin, whose content is
        # empty); written with tf.summary.write, it needs no tensorboard package installed.
        self._metadata = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
        self.path = os.path.join(directory, "metrics.csv")
        self.columns = _csv_columns(history)
        _atomic_write_text(self.path, _csv_text(self.columns, history))
        self._writer = tf.summary.create_file_writer(directory)
        # A stop right after a checkpoint may have kept its round from the event files.
        if resumed and history:
            self._scalars(history[-1])

    def add(self, row, history):
        columns = _csv_columns(history)
        if columns != self.columns:
            self.columns = columns
            _atomic_write_text(self.path, _csv_text(columns, history))
        else:
            with open(self.path, "a", newline="", encoding="utf-8") as f:
                csv.DictWriter(f, columns, restval="").writerow(_csv_row(row))
        self._scalars(row)

    def _scalars(self, row):
        tf = self._tf
        with self._writer.as_default():
            for name in _metric_names(row):
                tf.summary.write(tag=name, tensor=tf.constant(row[name], tf.float32),
                                 step=row["round"], metadata=self._metadata)
        self._writer.flush()

    def close(self):
        self._writer.close()


def _csv_columns(history):
    names = dict.fromkeys(n for row in history for n in _metric_names(row))
    return ["round", *names, "seconds", "clients"]


def _csv_row(row):
    return {**row, "clients": " ".join(str(c) for c in row["clients"])}


def _csv_text(columns, history):
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, restval="")
    writer.writeheader()
    writer.writerows(_csv_row(row) for row in history)
    return text.getvalue()


def _atomic_write_text(path, text):
    _atomic_write(path, lambda f: f.write(text.encode("utf-8")))


# Checkpoints.

class _Identity:
    """What decides a run's clients and state: checked when resuming."""

    def __init__(self, process, client_ids, seed, clients_per_round):
        signature = getattr(process.next, "type_signature", None)
        self.type_signature = str(signature) if signature is not None else \
            type(process).__qualname__
        self.fingerprint = hashlib.sha256(self.type_signature.encode()).hexdigest()
        ids = json.dumps([str(c) for c in client_ids]).encode()
        self.clients = {"count": len(client_ids), "sha256": hashlib.sha256(ids).hexdigest()}
        self.seed = seed
        self.clients_per_round = clients_per_round

    def manifest(self):
        return {"type_signature": self.type_signature, "fingerprint": self.fingerprint,
                "seed": self.seed, "clients_per_round": self.clients_per_round,
                "client_ids": self.clients}

    def difference(self, manifest):
        if manifest["seed"] != self.seed:
            return f"it was written with seed={manifest['seed']}, this call has seed={self.seed}"
        if manifest["clients_per_round"] != self.clients_per_round:
            return (f"it was written with clients_per_round={manifest['clients_per_round']}, "
                    f"this call has clients_per_round={self.clients_per_round}")
        if manifest["client_ids"] != self.clients:
            return (f"it was written for other client ids ({manifest['client_ids']['count']} "
                    f"clients), this call's train_data has {self.clients['count']} clients "
                    f"whose ids differ")
        if manifest["fingerprint"] != self.fingerprint:
            return (f"it was written by a process of type {_shorten(manifest['type_signature'])}"
                    f", this process has type {_shorten(self.type_signature)}")
        return None


def _shorten(text, limit=300):
    return text if len(text) <= limit else text[:limit] + "..."


class _Checkpoints:
    def __init__(self, directory, identity):
        self.directory = directory
        self.identity = identity
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):  # left by a run stopped while writing
            if _TEMPORARY_NAME.match(name):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(directory, name))

    def path(self, round_num):
        return os.path.join(self.directory, f"ckpt_{round_num:05d}.npz")

    def _rounds(self):
        rounds = []
        for name in os.listdir(self.directory):
            match = _CHECKPOINT_NAME.match(name)
            if match:
                rounds.append(int(match.group(1)))
        return sorted(rounds, reverse=True)

    def save(self, round_num, state, rng, history):
        leaves = []
        tree = _describe(state, "", leaves)
        manifest = {"format": FORMAT, "version": VERSION, "round": round_num,
                    **self.identity.manifest(), "state": tree,
                    "sampler": rng.bit_generator.state, "history": history}
        arrays = {f"leaf_{i}": leaf for i, leaf in enumerate(leaves)}
        arrays[MANIFEST] = np.frombuffer(json.dumps(manifest).encode("utf-8"), np.uint8)
        _atomic_write(self.path(round_num), lambda f: np.savez(f, **arrays))
        self._prune(round_num)

    def _prune(self, round_num):
        older = [r for r in self._rounds() if r <= round_num][KEEP_CHECKPOINTS:]
        for r in older:
            try:
                os.unlink(self.path(r))
            except FileNotFoundError:
                pass
            except OSError as e:
                warnings.warn(f"train_model: could not remove the old checkpoint "
                              f"{self.path(r)}: {e}", RuntimeWarning, stacklevel=4)

    def restore(self, template):
        """(state, round, sampler state, history) from the newest valid checkpoint, or None
        when there is none."""
        skipped = []
        for round_num in self._rounds():
            path = self.path(round_num)
            try:
                manifest, leaves = _read(path)
            except _Corrupt as e:
                warnings.warn(f"train_model: skipping the corrupt checkpoint {path}: {e}",
                              RuntimeWarning, stacklevel=3)
                skipped.append(f"{path}: {e}")
                continue
            if manifest["round"] != round_num:
                raise CheckpointError(f"checkpoint {path}: holds round {manifest['round']}, "
                                      f"not {round_num} as its name says.")
            expected = _describe(template, "", [], digest=False)
            difference = _difference(manifest["state"], expected, "")
            if difference is None:
                difference = self.identity.difference(manifest)
            if difference is not None:
                raise CheckpointError(f"checkpoint {path}: {difference}. Use another "
                                      f"checkpoint_dir, or the arguments it was written with.")
            state = _rebuild(manifest["state"], template, iter(leaves))
            return state, round_num, manifest["sampler"], manifest["history"]
        if skipped:
            raise CheckpointError("train_model: no valid checkpoint in "
                                  f"{self.directory}: " + "; ".join(skipped))
        return None


def _atomic_write(path, write):
    """Writes `path` by `write(file)` into a temporary file beside it, flushed, fsynced and
    renamed over `path`; the directory is fsynced. On any error the temporary file is removed
    and `path` is as it was."""
    directory, name = os.path.split(path)
    temporary = os.path.join(directory, f".{name}.{secrets.token_hex(8)}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_directory(directory or ".")


def _fsync_directory(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # a platform that cannot open directories (Windows)
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _read(path):
    """(manifest, leaves) of a checkpoint file. Raises _Corrupt for a file that cannot be
    read back whole and CheckpointError for one that is readable but not a checkpoint."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CheckpointError(f"checkpoint {path}: cannot be read ({e}).") from e
    try:
        archive = np.load(io.BytesIO(data), allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise CheckpointError(f"checkpoint {path}: not a checkpoint of train_model (a "
                                  f"single .npy array, not an .npz archive).")
    except CheckpointError:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
        raise _Corrupt(f"not a readable .npz archive ({e})") from e
    with archive:
        if MANIFEST not in archive.files:
            raise CheckpointError(f"checkpoint {path}: not a checkpoint of train_model (no "
                                  f"{MANIFEST!r} in the archive; it holds "
                                  f"{sorted(archive.files)[:5]}).")
        try:
            manifest = json.loads(archive[MANIFEST].tobytes().decode("utf-8"))
        except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
            raise _Corrupt(f"unreadable manifest ({e})") from e
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise CheckpointError(f"checkpoint {path}: not a checkpoint of train_model (its "
                                  f"manifest has no format {FORMAT!r}).")
        if manifest.get("version") != VERSION:
            raise CheckpointError(f"checkpoint {path}: format version "
                                  f"{manifest.get('version')!r}, this program reads version "
                                  f"{VERSION}.")
        try:
            specs = _check_manifest(manifest)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise _Corrupt(f"malformed manifest ({type(e).__name__}: {e})") from e
        leaves = []
        for index, spec in enumerate(specs):
            key = f"leaf_{index}"
            try:
                array = archive[key]
            except KeyError:
                raise _Corrupt(f"array {key} is missing") from None
            except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
                raise _Corrupt(f"array {key} is unreadable ({e})") from e
            if array.dtype.str != spec["dtype"] or list(array.shape) != spec["shape"]:
                raise _Corrupt(f"array {key} is {array.dtype}{list(array.shape)}, the manifest "
                               f"says {spec['dtype']}{spec['shape']}")
            if _digest(array) != spec["sha256"]:
                raise _Corrupt(f"array {key} does not match its checksum")
            leaves.append(array)
    return manifest, leaves


def _check_manifest(manifest):
    """The leaf descriptions of a manifest whose fields all have the right kinds."""
    round_num = manifest["round"]
    if not isinstance(round_num, int) or round_num < 0:
        raise ValueError(f"round {round_num!r}")
    for key, kind in (("type_signature", str), ("fingerprint", str), ("seed", int),
                      ("clients_per_round", int), ("client_ids", dict), ("sampler", dict),
                      ("history", list)):
        if not isinstance(manifest[key], kind):
            raise TypeError(f"{key} is a {type(manifest[key]).__name__}")
    history = manifest["history"]
    if [row.get("round") if isinstance(row, dict) else None for row in history] != list(
            range(1, round_num + 1)):
        raise ValueError(f"the history does not hold rounds 1..{round_num}")
    np.random.default_rng().bit_generator.state = manifest["sampler"]  # raises if not PCG64
    specs = []
    _collect_leaves(manifest["state"], specs)
    return specs


def _collect_leaves(tree, specs):
    kind = tree["kind"]
    if kind == "leaf":
        if not (isinstance(tree["dtype"], str) and isinstance(tree["shape"], list)
                and all(isinstance(d, int) for d in tree["shape"])
                and isinstance(tree["sha256"], str) and tree["python"] in _PYTHON_KINDS):
            raise ValueError(f"bad leaf {tree}")
        specs.append(tree)
    elif kind in _CONTAINERS:
        for item in tree["items"]:
            name, child = item
            if name is not None and not isinstance(name, str):
                raise TypeError(f"name {name!r}")
            _collect_leaves(child, specs)
    else:
        raise ValueError(f"unknown kind {kind!r}")


_CONTAINERS = {"struct": "struct", "dict": "mapping", "ordereddict": "mapping",
               "tuple": "sequence", "list": "sequence", "namedtuple": "sequence"}
_PYTHON_KINDS = ("array", "numpy", "int", "float", "bool")


def _is_namedtuple(value):
    return isinstance(value, tuple) and hasattr(type(value), "_fields")


def _describe(value, path, leaves, digest=True):
    """The JSON description of a state; appends its arrays to `leaves` in order. Without
    `digest`, the leaves' checksums are left out (to compare structures only)."""
    if isinstance(value, fcore.Struct):
        return {"kind": "struct", "items": [
            [name, _describe(child, _join(path, name if name is not None else str(i)), leaves,
                             digest)]
            for i, (name, child) in enumerate(value.items())]}
    if _is_namedtuple(value):
        return {"kind": "namedtuple", "class": type(value).__name__, "items": [
            [name, _describe(child, _join(path, name), leaves, digest)]
            for name, child in zip(value._fields, value)]}
    if isinstance(value, (tuple, list)):
        return {"kind": type(value).__name__ if type(value) in (tuple, list) else
                ("tuple" if isinstance(value, tuple) else "list"), "items": [
                    [None, _describe(child, _join(path, str(i)), leaves, digest)]
                    for i, child in enumerate(value)]}
    if isinstance(value, collections.abc.Mapping):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"train_model: cannot checkpoint the state: the mapping at "
                                f"{path or 'the top'} has a key {key!r} that is not a str.")
        kind = "ordereddict" if isinstance(value, collections.OrderedDict) else "dict"
        return {"kind": kind, "items": [[key, _describe(child, _join(path, key), leaves, digest)]
                                        for key, child in value.items()]}
    if isinstance(value, bool):
        python = "bool"
    elif isinstance(value, int):
        python = "int"
    elif isinstance(value, float):
        python = "float"
    elif isinstance(value, np.generic):
        python = "numpy"
    else:
        python = "array"
    try:
        array = np.asarray(value, order="C")
    except Exception as e:  # noqa: BLE001 (anything that is no array)
        raise TypeError(f"train_model: cannot checkpoint the state leaf {path or 'the state'} "
                        f"({type(value).__name__}): {e}") from e
    if array.dtype.kind in "OV" or array.dtype.hasobject:
        raise TypeError(f"train_model: cannot checkpoint the state leaf {path or 'the state'}: "
                        f"dtype {array.dtype} has no pickle-free form.")
    leaves.append(array)
    return {"kind": "leaf", "python": python, "dtype": array.dtype.str,
            "shape": list(array.shape), "sha256": _digest(array) if digest else None}


def _digest(array):
    return hashlib.sha256(np.asarray(array, order="C").tobytes()).hexdigest()


def _difference(saved, expected, path):
    """How a checkpoint's state description differs from this process's, or None."""
    where = f"state {path}" if path else "the state"
    leaf = f"state leaf {path}" if path else "the state"
    saved_kind = "leaf" if saved["kind"] == "leaf" else _CONTAINERS[saved["kind"]]
    expected_kind = "leaf" if expected["kind"] == "leaf" else _CONTAINERS[expected["kind"]]
    if saved_kind != expected_kind:
        return (f"{where} is {_kind_words(saved)} in the checkpoint, this process has "
                f"{_kind_words(expected)}")
    if saved_kind == "leaf":
        for field, words in (("dtype", "dtype"), ("shape", "shape")):
            if saved[field] != expected[field]:
                show = _show_dtype if field == "dtype" else _show_shape
                return (f"{leaf} has {words} {show(saved[field])}, this process "
                        f"has {show(expected[field])}")
        return None
    saved_names = [name for name, _ in saved["items"]]
    expected_names = [name for name, _ in expected["items"]]
    if len(saved_names) != len(expected_names) or (
            saved_kind != "sequence" and saved_names != expected_names):
        return (f"{where} has {len(saved_names)} elements {_names(saved_names)}, this "
                f"process has {len(expected_names)} {_names(expected_names)}")
    for i, ((name, a), (_, b)) in enumerate(zip(saved["items"], expected["items"])):
        found = _difference(a, b, _join(path, name if name is not None else str(i)))
        if found is not None:
            return found
    return None


def _kind_words(tree):
    return {"leaf": "an array", "struct": "a struct", "dict": "a dict",
            "ordereddict": "an OrderedDict", "tuple": "a tuple", "list": "a list",
            "namedtuple": f"a namedtuple {tree.get('class')}"}[tree["kind"]]


def _show_dtype(dtype):
    return np.dtype(dtype).name


def _show_shape(shape):
    return str(tuple(shape))


def _names(names):
    shown = ", ".join("_" if n is None else n for n in names[:8])
    return f"({shown}{', ...' if len(names) > 8 else ''})"


def _rebuild(tree, template, leaves):
    """The state a checkpoint describes, with this process's containers where it needs
    classes (namedtuples) and the checkpoint's Python kinds for its leaves."""
    kind = tree["kind"]
    if kind == "leaf":
        array = next(leaves)
        python = tree["python"]
        if python == "array":
            return array
        if python == "numpy":
            return array[()]
        return {"int": int, "float": float, "bool": bool}[python](array.item())
    children = [_rebuild(child, _child(template, name, i), leaves)
                for i, (name, child) in enumerate(tree["items"])]
    if kind == "struct":
        return fcore.Struct([(name, child) for (name, _), child in zip(tree["items"], children)])
    if kind in ("dict", "ordereddict"):
        container = collections.OrderedDict if kind == "ordereddict" else dict
        return container((name, child) for (name, _), child in zip(tree["items"], children))
    if kind == "namedtuple" and _is_namedtuple(template):
        return type(template)(*children)
    return list(children) if kind == "list" else tuple(children)


def _child(template, name, index):
    try:
        if isinstance(template, collections.abc.Mapping):
            return template[name]
        return template[index]
    except (KeyError, IndexError, TypeError):
        return None
