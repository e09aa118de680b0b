"""Functional optimizers for client and server updates: `state, weights = apply(state,
weights, gradients)` on tensors, so their state is plain data the IR can carry.

`from_keras` reads a Keras optimizer (`tf.keras.optimizers.SGD(0.1)`, `Adam`) into one of
these; the state of `SGD()` without momentum is its step count, `<int64>`, as in TFF."""

from __future__ import annotations

import numpy as np


def _tf():
    import tensorflow as tf
    return tf


class SGD:
    """Gradient descent, with optional (Nesterov) momentum."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False):
        if learning_rate <= 0 or not 0 <= momentum < 1:
            raise ValueError(f"SGD needs learning_rate > 0 and 0 <= momentum < 1, found "
                             f"{learning_rate}, {momentum}.")
        self.learning_rate = float(learning_rate)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def initialize(self, weights):
        """The initial state for weights shaped like `weights` (tensors or specs)."""
        tf = _tf()
        step = tf.constant(0, tf.int64)
        if not self.momentum:
            return (step,)
        return (step, tuple(tf.zeros(w.shape, w.dtype) for w in weights))

    def apply(self, state, weights, gradients):
        tf = _tf()
        step = state[0] + 1
        if not self.momentum:
            return (step,), [w - self.learning_rate * g for w, g in zip(weights, gradients)]
        velocities = [self.momentum * v - self.learning_rate * g
                      for v, g in zip(state[1], gradients)]
        if self.nesterov:
            new = [w + self.momentum * v - self.learning_rate * g
                   for w, v, g in zip(weights, velocities, gradients)]
        else:
            new = [w + v for w, v in zip(weights, velocities)]
        return (step, tuple(velocities)), [tf.convert_to_tensor(w) for w in new]

    def __repr__(self):
        return f"SGD(learning_rate={self.learning_rate}, momentum={self.momentum})"


class Adam:
    """Adam (Kingma and Ba), with bias correction."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        self.learning_rate = float(learning_rate)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)

    def initialize(self, weights):
        tf = _tf()
        zeros = tuple(tf.zeros(w.shape, w.dtype) for w in weights)
        return (tf.constant(0, tf.int64), zeros, zeros)

    def apply(self, state, weights, gradients):
        tf = _tf()
        step = state[0] + 1
        t = tf.cast(step, tf.float32)
        m = tuple(self.beta_1 * m + (1 - self.beta_1) * g for m, g in zip(state[1], gradients))
        v = tuple(self.beta_2 * v + (1 - self.beta_2) * g * g
                  for v, g in zip(state[2], gradients))
        rate = self.learning_rate * tf.sqrt(1 - self.beta_2 ** t) / (1 - self.beta_1 ** t)
        new = [w - rate * mi / (tf.sqrt(vi) + self.epsilon) for w, mi, vi in zip(weights, m, v)]
        return (step, m, v), new

    def __repr__(self):
        return f"Adam(learning_rate={self.learning_rate})"


def from_keras(optimizer):
    """The functional optimizer for a Keras optimizer object (SGD or Adam), or `optimizer`
    itself when it already is one."""
    if isinstance(optimizer, (SGD, Adam)):
        return optimizer
    name = type(optimizer).__name__
    rate = getattr(optimizer, "learning_rate", None)
    try:
        rate = float(np.asarray(rate))
    except (TypeError, ValueError):
        raise TypeError(f"The learning rate of {name} must be a constant, found {rate!r} "
                        f"(schedules are not supported).") from None
    if name == "SGD":
        return SGD(rate, float(np.asarray(getattr(optimizer, "momentum", 0.0))),
                   bool(getattr(optimizer, "nesterov", False)))
    if name == "Adam":
        return Adam(rate, float(np.asarray(optimizer.beta_1)),
                    float(np.asarray(optimizer.beta_2)), float(optimizer.epsilon))
    raise TypeError(f"Unsupported optimizer {name}: use tf.keras.optimizers.SGD or Adam, or "
                    f"learning.optimizers.SGD / Adam.")


def build(optimizer_fn, default):
    """The functional optimizer from an optional `optimizer_fn` (a no-argument function
    returning a Keras or functional optimizer), or `default`."""
    if optimizer_fn is None:
        return default
    if not callable(optimizer_fn):
        raise TypeError(f"Expected a function that returns an optimizer, found "
                        f"{optimizer_fn!r}.")
    return from_keras(optimizer_fn())
