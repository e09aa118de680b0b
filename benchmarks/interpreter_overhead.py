"""Interpreter overhead: calls per second of a trivial federated_map over 1, 100 and 10,000
clients, on the reference interpreter and on the fast executor.

Two maps are timed: one whose function is an IR lambda (no TensorFlow: pure interpreter
overhead per client) and one whose function is a TF leaf (`x + 1` as a tf_computation), next
to a hand-written loop that calls the same compiled TF function once per client, in the same
run, with the ratio printed.

    python benchmarks/interpreter_overhead.py [--repeats 5]
"""

import argparse
import time

import numpy as np
import tensorflow as tf

import fcore


def best_seconds(fn, repeats):
    fn()  # warm-up: traces and caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 100, 10_000])
    args = parser.parse_args()

    ir_map = fcore.parse_computation("(x:{int32}@CLIENTS -> federated_map(<(v:int32 -> v),x>))")

    @fcore.tf_computation(np.int32)
    def add_one(x):
        return x + 1

    @fcore.federated_computation(fcore.FederatedType(np.int32, fcore.CLIENTS))
    def tf_map(x):
        return fcore.federated_map(add_one, x)

    compiled = tf.function(lambda x: x + 1, input_signature=[tf.TensorSpec([], tf.int32)])
    concrete = compiled.get_concrete_function()

    print(f"{'executor':>9} {'clients':>8} {'IR map calls/s':>15} {'TF map calls/s':>15} "
          f"{'pure TF loop calls/s':>21} {'TF map / pure TF':>17}")
    for kind in ("reference", "fast"):
        for n in args.clients:
            data = list(range(n))
            reps = args.repeats if n <= 100 else max(1, args.repeats // 2)
            with fcore.execution_context(kind):
                t_ir = best_seconds(lambda: ir_map(data), reps)
                t_tf = best_seconds(lambda: tf_map(data), reps)
            arrays = [np.int32(v) for v in data]
            t_pure = best_seconds(lambda: [concrete(v).numpy() for v in arrays], reps)
            print(f"{kind:>9} {n:>8} {1 / t_ir:>15.1f} {1 / t_tf:>15.2f} {1 / t_pure:>21.2f} "
                  f"{t_tf / t_pure:>16.2f}x")


if __name__ == "__main__":
    main()
