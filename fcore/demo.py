"""A short tour of fcore's type notation: `python -m fcore.demo`."""

import numpy as np

import fcore


def main():
    batch = fcore.to_type({"x": (np.float32, [None, 784]), "y": (np.int32, [None])})
    data = fcore.FederatedType(fcore.SequenceType(batch), fcore.CLIENTS)
    state = fcore.parse_type(
        "<model=<trainable=<dense/bias=float32[512],dense/kernel=float32[784,512],"
        "dense_1/bias=float32[10],dense_1/kernel=float32[512,10]>,non_trainable=<>>,"
        "optimizer_state=<int64>>@SERVER")
    initialize = fcore.FunctionType(None, state)
    print("client data:      ", data)
    print("initialize:       ", initialize)
    print("initialize, formatted:")
    print(initialize.formatted(width=72))
    print("{float32[?]}@CLIENTS accepts float32[3]@CLIENTS:",
          fcore.parse_type("{float32[?]}@CLIENTS").is_assignable_from(
              fcore.parse_type("float32[3]@CLIENTS")))


if __name__ == "__main__":
    main()
