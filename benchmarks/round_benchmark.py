"""Seconds per FedAvg round and peak memory, fcore's executors against hand-written pure
TensorFlow, on the tutorial's model and MNIST digits. Each measurement runs in its own
process (so peak memory is per run); the table prints ratios to the best pure-TF round.

Modes:
  tf_xla     hand-written: the whole round (every client's local epoch and the weighted mean)
             as one XLA-compiled graph with a loop over clients
  tf_xla_clip
             tf_xla with the custom algorithm's clipping step: each client's delta clipped
             to a global norm of 1e6 (`tf.clip_by_global_norm`), the same math as the
             custom modes
  tf_loop    hand-written: a Python loop calling one compiled client update per client
  reference  fcore, the reference interpreter
  fast       fcore, the fast executor (the default)
  dask       fcore on a 2-worker dask.distributed LocalCluster
  custom_fast, custom_reference
             a FedAvg written by hand as TFF's tutorials write it (`dataset.reduce` client
             update, a clipping leaf, weighted mean, server update) on that executor
  algo_avg, algo_dp, algo_robust
             `learning.algorithms` on the fast executor: weighted FedAvg (MeanFactory);
             unweighted FedAvg with `learning.dp_aggregator(0.5, clients)` (zeroing, adaptive
             clip, Gaussian noise); weighted FedAvg with `learning.robust_aggregator()`

    python benchmarks/round_benchmark.py --clients 10 100 1000 --modes tf_xla tf_loop fast
    python benchmarks/round_benchmark.py --clients 10000 --examples 5 --modes tf_xla fast
    python benchmarks/round_benchmark.py --data-form datasets --modes tf_xla fast custom_fast

Data: the 4,000 training digits split IID over the clients, or with --examples E, E digits
per client (drawn with replacement when clients x E exceeds 4,000). Batches of 100, one local
epoch, client SGD 0.1, server SGD 1.0, all clients training every round.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BATCH = 100
LR = 0.1


def client_arrays(num_clients, examples, seed=0, split="iid"):
    import numpy as np

    from learning import data
    (x, y), _ = data.load_mnist()
    rng = np.random.default_rng(seed)
    if split == "dirichlet":
        return [(x[p], y[p]) for p in data.split_dirichlet(y, num_clients, 0.5, seed)]
    if split == "by_label":
        return [(x[p], y[p]) for p in data.split_by_label(y, num_clients, seed)]
    if examples is None:
        order = rng.permutation(len(y))
        parts = np.array_split(order, num_clients)
    else:
        total = num_clients * examples
        pool = rng.permutation(len(y)) if total <= len(y) else rng.integers(0, len(y), total)
        parts = [pool[i * examples:(i + 1) * examples] for i in range(num_clients)]
    return [(x[p], y[p]) for p in parts]


def batches(x, y):
    import collections
    return [collections.OrderedDict(x=x[i:i + BATCH], y=y[i:i + BATCH])
            for i in range(0, len(y), BATCH)]


DATA_FORM = "lists"  # --data-form: how fcore's modes get each client's data


def client_data(clients):
    """Each client's batches: a list of OrderedDicts (`lists`), or a batched
    `tf.data.Dataset` (`datasets`), as a user would hand them to a round."""
    if DATA_FORM == "lists":
        return [batches(x, y) for x, y in clients]
    import collections

    import tensorflow as tf
    return [tf.data.Dataset.from_tensor_slices(collections.OrderedDict(x=x, y=y)).batch(BATCH)
            for x, y in clients]


def initial_weights():
    from learning import mnist
    model = mnist.create_compiled_keras_model()
    return model, [v.numpy() for v in model.trainable_variables]


def pure_tf(clients, xla, clip=False):
    """(run_round, description): hand-written FedAvg on raw weight tensors."""
    import numpy as np
    import tensorflow as tf
    _, weights = initial_weights()

    def loss_and_grads(w, bx, by, mask):
        with tf.GradientTape() as tape:
            tape.watch(w)
            hidden = tf.nn.relu(bx @ w[0] + w[1])
            probabilities = tf.nn.softmax(hidden @ w[2] + w[3])
            per_example = tf.keras.losses.sparse_categorical_crossentropy(by, probabilities)
            loss = tf.reduce_sum(per_example * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)
        return tape.gradient(loss, w)

    longest = max(len(y) for _, y in clients)
    window = min(BATCH, longest)  # batches of up to 100 (no padding beyond the data)

    def local_epoch(w, x, y, n):
        """SGD over the client's n examples in batches of 100 (x, y padded)."""
        steps = (n + BATCH - 1) // BATCH

        def body(j, w):
            bx = tf.slice(x, [j * BATCH, 0], [window, 784])
            by = tf.slice(y, [j * BATCH], [window])
            mask = tf.cast(tf.range(window) + j * BATCH < n, tf.float32)
            grads = loss_and_grads(w, bx, by, mask)
            return j + 1, [a - LR * g for a, g in zip(w, grads)]
        _, w = tf.while_loop(lambda j, _: j < steps, body, (tf.constant(0), w))
        return w

    if xla:
        padded = (-(-longest // BATCH) - 1) * BATCH + window
        xs = np.zeros((len(clients), padded, 784), np.float32)
        ys = np.zeros((len(clients), padded), np.int32)
        ns = np.array([len(y) for _, y in clients], np.int32)
        for i, (x, y) in enumerate(clients):
            xs[i, :len(y)], ys[i, :len(y)] = x, y

        @tf.function(jit_compile=True)
        def round_fn(w, xs, ys, ns):
            def body(i, total, count):
                new = local_epoch(w, xs[i], ys[i], ns[i])
                n = tf.cast(ns[i], tf.float32)
                delta = [a - b for a, b in zip(new, w)]
                if clip:
                    delta = tf.clip_by_global_norm(delta, 1e6)[0]
                return i + 1, [t + n * d for t, d in zip(total, delta)], count + n
            _, total, count = tf.while_loop(
                lambda i, *_: i < tf.shape(ns)[0], body,
                (tf.constant(0), [tf.zeros_like(a) for a in w], tf.constant(0.0)))
            return [a + t / count for a, t in zip(w, total)]
        args = (xs, ys, ns)
        return lambda: [t.numpy() for t in round_fn(weights, *args)]

    @tf.function
    def client_update(w, x, y):
        n = tf.shape(y)[0]
        pad = (window - n % BATCH) % window if window < BATCH else (BATCH - n % BATCH) % BATCH
        x = tf.pad(x, [[0, pad], [0, 0]])
        y = tf.pad(y, [[0, pad]])
        return local_epoch(w, x, y, n)

    def run_round():
        total = [np.zeros_like(a, np.float64) for a in weights]
        count = 0.0
        for x, y in clients:
            new = client_update(weights, x, y)
            for t, a, b in zip(total, new, weights):
                t += len(y) * (a.numpy() - b)
            count += len(y)
        return [a + (t / count).astype(np.float32) for a, t in zip(weights, total)]
    return run_round


def fcore_round(clients, mode):
    import fcore
    import learning
    from learning import mnist
    data = client_data(clients)
    sample = batches(*clients[0])[0]

    def model_fn():
        return learning.from_compiled_keras_model(mnist.create_compiled_keras_model(), sample)
    process = learning.build_federated_averaging_process(model_fn)
    state = process.initialize()
    if mode == "dask":
        import distributed
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None)
        client = distributed.Client(cluster)

        def run():
            with fcore.execution_context(dask=client):
                return process.next(state, data)
        return run

    def run():
        with fcore.execution_context(mode):
            return process.next(state, data)
    return run


def algorithm_round(clients, kind):
    import fcore
    import learning
    from learning import algorithms, mnist
    data = client_data(clients)
    sample = batches(*clients[0])[0]

    def model_fn():
        return learning.from_compiled_keras_model(mnist.create_compiled_keras_model(), sample)
    if kind == "dp":
        process = algorithms.build_unweighted_fed_avg(
            model_fn, model_aggregator=learning.dp_aggregator(0.5, len(clients)))
    else:
        process = algorithms.build_weighted_fed_avg(
            model_fn, model_aggregator=learning.robust_aggregator() if kind == "robust"
            else None)
    state = process.initialize()

    def run():
        with fcore.execution_context("fast"):
            return process.next(state, data)
    return run


def custom_round(clients, kind):
    """A FedAvg written by hand as TFF's tutorials write it: a client update that folds its
    batches with `dataset.reduce`, a second TF leaf that clips each client's delta, a
    weighted `federated_mean` and a TF server update (the same model, data and rates as the
    other modes), run on the executor `kind`."""
    import numpy as np
    import tensorflow as tf

    import fcore
    _, weights = initial_weights()
    data = client_data(clients)
    weights_type = fcore.StructType([(None, fcore.TensorType(np.float32, w.shape))
                                     for w in weights])
    batch_type = fcore.to_type(collections_spec())

    @fcore.tf_computation(weights_type, fcore.SequenceType(batch_type))
    def client_update(initial, dataset):
        def step(state, batch):
            w, n = state
            with tf.GradientTape() as tape:
                tape.watch(w)
                hidden = tf.nn.relu(batch["x"] @ w[0] + w[1])
                probabilities = tf.nn.softmax(hidden @ w[2] + w[3])
                loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(
                    batch["y"], probabilities))
            grads = tape.gradient(loss, w)
            return tuple(a - LR * g for a, g in zip(w, grads)), \
                n + tf.cast(tf.shape(batch["y"])[0], tf.float32)
        new, n = dataset.reduce((tuple(initial), tf.constant(0.0)), step)
        return [a - b for a, b in zip(new, initial)], n

    @fcore.tf_computation(weights_type, np.float32)
    def clip(delta, norm):
        return tf.clip_by_global_norm(list(delta), norm)[0]

    @fcore.tf_computation(weights_type, weights_type)
    def server_update(w, delta):
        return [a + d for a, d in zip(w, delta)]

    @fcore.federated_computation(fcore.FederatedType(weights_type, fcore.SERVER),
                                 fcore.FederatedType(fcore.SequenceType(batch_type),
                                                     fcore.CLIENTS))
    def next_round(server_weights, client_data):
        broadcast = fcore.federated_broadcast(server_weights)
        outputs = fcore.federated_map(client_update, (broadcast, client_data))
        norm = fcore.federated_broadcast(fcore.federated_value(1e6, fcore.SERVER))
        clipped = fcore.federated_map(clip, (outputs[0], norm))
        mean = fcore.federated_mean(clipped, outputs[1])
        return fcore.federated_map(server_update, (server_weights, mean))

    def run():
        with fcore.execution_context(kind):
            return next_round(weights, data)
    return run


def collections_spec():
    import collections

    import tensorflow as tf
    return collections.OrderedDict(x=tf.TensorSpec([None, 784], tf.float32),
                                   y=tf.TensorSpec([None], tf.int32))


def measure(mode, num_clients, examples, rounds, split):
    clients = client_arrays(num_clients, examples, split=split)
    if mode.startswith("tf_"):
        run = pure_tf(clients, xla=mode.startswith("tf_xla"), clip=mode == "tf_xla_clip")
    elif mode.startswith("algo_"):
        run = algorithm_round(clients, mode[len("algo_"):])
    elif mode.startswith("custom_"):
        run = custom_round(clients, mode[len("custom_"):])
    else:
        run = fcore_round(clients, mode)
    start = time.perf_counter()
    run()  # the first round traces and compiles
    first = time.perf_counter() - start
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    times.sort()
    return {"mode": mode, "clients": num_clients, "examples": examples, "split": split,
            "seconds": times[len(times) // 2], "first_round": first,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _median_run(runs):
    """The run with the median round time (its first round and memory with it)."""
    return sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--modes", nargs="+",
                        default=["tf_xla", "tf_loop", "reference", "fast", "dask"])
    parser.add_argument("--examples", type=int, default=None)
    parser.add_argument("--split", choices=("iid", "by_label", "dirichlet"), default="iid",
                        help="how the 4,000 digits are split (with no --examples)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data-form", choices=("lists", "datasets"), default="lists",
                        help="fcore's modes get each client's batches as a list, or as a "
                             "batched tf.data.Dataset")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run the modes this many times, interleaved (each in a fresh "
                             "process), and take each mode's median: the machine's drift "
                             "then moves every mode alike")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # mode clients (internal)
    args = parser.parse_args()
    global DATA_FORM
    DATA_FORM = args.data_form
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), args.examples, args.rounds,
                                 args.split)))
        return
    print(f"{'clients':>8} {'mode':>10} {'s/round':>9} {'x best TF':>10} {'x TF loop':>10} "
          f"{'first round s':>14} {'peak MB':>8}")
    for n in args.clients:
        runs = {}
        for _ in range(args.repeat):
            for mode in args.modes:
                command = [sys.executable, __file__, "--one", mode, str(n),
                           "--rounds", str(args.rounds), "--split", args.split,
                           "--data-form", args.data_form]
                if args.examples:
                    command += ["--examples", str(args.examples)]
                out = subprocess.run(command, capture_output=True, text=True)
                if out.returncode:
                    print(f"{n:>8} {mode:>10} failed: {out.stderr.strip().splitlines()[-1]}")
                    continue
                runs.setdefault(mode, []).append(json.loads(out.stdout.strip().splitlines()[-1]))
        results = {mode: _median_run(found) for mode, found in runs.items()}
        best = min((r["seconds"] for m, r in results.items() if m.startswith("tf_")),
                   default=None)
        loop = results.get("tf_loop", {}).get("seconds")
        for mode, r in results.items():
            ratio = f"{r['seconds'] / best:.2f}x" if best else "-"
            vs_loop = f"{r['seconds'] / loop:.2f}x" if loop else "-"
            print(f"{n:>8} {mode:>10} {r['seconds']:>9.3f} {ratio:>10} {vs_loop:>10} "
                  f"{r['first_round']:>14.2f} {r['peak_rss_mb']:>8.0f}")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
