"""Soak: many FedAvg rounds of sampled unequal clients; prints RSS and compile counts.

100 rounds (by default) of 10 clients sampled from 100 Dirichlet-split MNIST clients, data
given as lists of batches, on the fast executor. Each line: round, seconds, RSS in MB, and
how many graphs were traced so far (unrolled client variants, compiled client loops and
their traces). The last lines give the RSS slope after round 20 (MB per round, a least-squares
fit) and the compile counts.

    python benchmarks/soak.py --rounds 100 --clients 100 --per-round 10
"""

import argparse
import os
import resource
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def compile_counts(process):
    """(unrolled leaf variants, compiled loops, traces of those loops) for the process."""
    from fcore.execution import lowering
    leaves = [leaf for leaf in process.next._with_report.leaves().values()]
    unrolled = sum(len(getattr(leaf, "_unrolled", {})) for leaf in leaves)
    loops = [f for leaf in leaves for f in lowering.compiled_loops(leaf)]
    traces = sum(fn.experimental_get_tracing_count() for loop in loops
                 for fn in (loop.traced or []))
    return unrolled, len(loops), traces


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--per-round", type=int, default=10)
    parser.add_argument("--split", default="dirichlet")
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf

    import learning
    from learning.data import ClientData, sample_clients
    from learning.mnist import create_compiled_keras_model

    tf.keras.utils.set_random_seed(0)
    data, _ = ClientData.from_mnist(split=args.split, num_clients=args.clients)
    sample = data.client_batches(data.client_ids[0])[0]
    process = learning.build_federated_averaging_process(
        lambda: learning.from_compiled_keras_model(create_compiled_keras_model(), sample))
    state = process.initialize()
    rss = []
    for round_num in range(1, args.rounds + 1):
        ids = sample_clients(data.client_ids, args.per_round, 0, round_num)
        start = time.perf_counter()
        state, metrics = process.next(state, [data.client_batches(i) for i in ids])
        seconds = time.perf_counter() - start
        rss.append(rss_mb())
        unrolled, loops, traces = compile_counts(process)
        print(f"round {round_num:3d}  {seconds:6.3f} s  RSS {rss[-1]:8.1f} MB  "
              f"unrolled variants {unrolled:3d}  loops {loops:3d}  loop traces {traces:3d}",
              flush=True)
    if len(rss) > 25:
        rounds = np.arange(21, len(rss) + 1)
        slope = np.polyfit(rounds, np.array(rss[20:]), 1)[0]
        print(f"RSS slope after round 20: {slope:.3f} MB/round")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
