"""A short tour of fcore: `python -m fcore.demo`.

Prints type signatures in TFF's notation, runs a custom federated algorithm (the mean of the
clients' temperatures, broadcast back as a threshold, and a count of clients above it), and
reads a computation back from its text form."""

import numpy as np

import fcore


def main():
    print(fcore.federated_computation(lambda: "Hello, World!")())

    import tensorflow as tf  # only the TF computations below need TensorFlow

    @fcore.tf_computation(np.float32, np.float32)
    def exceeds(temperature, threshold):
        return tf.cast(temperature > threshold, tf.int32)

    @fcore.federated_computation(fcore.FederatedType(np.float32, fcore.CLIENTS))
    def count_above_mean(temperatures):
        mean = fcore.federated_mean(temperatures)
        threshold = fcore.federated_broadcast(mean)
        above = fcore.federated_map(exceeds, fcore.federated_zip((temperatures, threshold)))
        return mean, fcore.federated_sum(above)

    print("type signature:", count_above_mean.type_signature)
    print("as text:")
    print(count_above_mean)
    mean, count = count_above_mean([20.5, 25.0, 19.0, 31.5])
    print(f"mean temperature {mean:.2f}, clients above it: {count}")

    again = fcore.parse_computation(str(count_above_mean), count_above_mean.leaves())
    print("parsed back equal:", again == count_above_mean)

    state = fcore.parse_type(
        "<model=<trainable=<dense/bias=float32[512],dense/kernel=float32[784,512],"
        "dense_1/bias=float32[10],dense_1/kernel=float32[512,10]>,non_trainable=<>>,"
        "optimizer_state=<int64>>@SERVER")
    print("a FedAvg server state, formatted:")
    print(state.formatted(width=72))


if __name__ == "__main__":
    main()
