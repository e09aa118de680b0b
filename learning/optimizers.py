"""Functional optimizers for client and server updates: `state, weights = apply(state,
weights, gradients)` on tensors, so their state is plain data the IR can carry.

SGD (with momentum: FedAvgM on the server), Adam (FedAdam), Yogi (FedYogi) and Adagrad
(FedAdagrad). The state starts with the step count, `int64`; `SGD()` without momentum has only
that, `<int64>`, as in TFF.

`learning_rate` is a number or a schedule: a Keras `LearningRateSchedule` or any function of
the step (an int64 tensor) returning the rate. `rate(step)` evaluates it. On the server an
optimizer takes one step per round, so a schedule is per round; client training evaluates the
client optimizer's schedule at the round number once per round (every local step of round t
uses `rate(t)`). `from_keras` reads a Keras optimizer (`tf.keras.optimizers.SGD(0.1)`, `Adam`,
`Adagrad`, a schedule included) into one of these, and refuses what it cannot honour."""

from __future__ import annotations

import math

import numpy as np


def _tf():
    import tensorflow as tf
    return tf


def _learning_rate(value, what):
    """A positive number, or a schedule (a callable of the step)."""
    if callable(value):
        return value
    try:
        rate = float(np.asarray(value))
    except (TypeError, ValueError):
        raise TypeError(f"{what}: learning_rate must be a number or a schedule (a Keras "
                        f"LearningRateSchedule or a function of the step), found "
                        f"{value!r}.") from None
    if not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"{what}: learning_rate must be > 0, found {rate}.")
    return rate


class Optimizer:
    """The protocol: `initialize(weights) -> state`, `apply(state, weights, gradients,
    rate=None) -> (state, new_weights)`, `rate(step)`. Subclasses define `_slots` and
    `_step`."""

    def __init__(self, learning_rate):
        self.learning_rate = _learning_rate(learning_rate, type(self).__name__)

    @property
    def has_schedule(self) -> bool:
        return callable(self.learning_rate)

    def rate(self, step):
        """The learning rate at `step` (the count of steps taken before), as float32."""
        tf = _tf()
        if not self.has_schedule:
            return tf.constant(self.learning_rate, tf.float32)
        return tf.cast(self.learning_rate(tf.cast(step, tf.int64)), tf.float32)

    def initialize(self, weights):
        """The initial state for weights shaped like `weights` (tensors or specs)."""
        tf = _tf()
        return (tf.constant(0, tf.int64),) + tuple(self._slots(weights))

    def apply(self, state, weights, gradients, rate=None):
        """One step: `(new_state, new_weights)`; `rate` overrides the schedule."""
        rate = self.rate(state[0]) if rate is None else rate
        step = state[0] + 1
        slots, new = self._step(step, tuple(state[1:]), list(weights), list(gradients), rate)
        return (step,) + tuple(slots), [_tf().convert_to_tensor(w) for w in new]

    def _slots(self, weights):
        return ()

    def _zeros(self, weights, value=0.0):
        tf = _tf()
        return tuple(tf.fill(w.shape, tf.constant(value, w.dtype)) for w in weights)

    def __repr__(self):
        rate = "schedule" if self.has_schedule else self.learning_rate
        return f"{type(self).__name__}(learning_rate={rate})"


class SGD(Optimizer):
    """Gradient descent, with optional (Nesterov) momentum."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False):
        super().__init__(learning_rate)
        if not 0 <= momentum < 1:
            raise ValueError(f"SGD needs 0 <= momentum < 1, found {momentum}.")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _slots(self, weights):
        return (self._zeros(weights),) if self.momentum else ()

    def _step(self, step, slots, weights, gradients, rate):
        if not self.momentum:
            return (), [w - rate * g for w, g in zip(weights, gradients)]
        velocities = tuple(self.momentum * v - rate * g for v, g in zip(slots[0], gradients))
        if self.nesterov:
            new = [w + self.momentum * v - rate * g
                   for w, v, g in zip(weights, velocities, gradients)]
        else:
            new = [w + v for w, v in zip(weights, velocities)]
        return (velocities,), new

    def __repr__(self):
        rate = "schedule" if self.has_schedule else self.learning_rate
        return f"SGD(learning_rate={rate}, momentum={self.momentum})"


class Adam(Optimizer):
    """Adam (Kingma and Ba), with bias correction."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        super().__init__(learning_rate)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def _slots(self, weights):
        return self._zeros(weights), self._zeros(weights)

    def _step(self, step, slots, weights, gradients, rate):
        tf = _tf()
        t = tf.cast(step, tf.float32)
        m = tuple(self.beta_1 * m + (1 - self.beta_1) * g for m, g in zip(slots[0], gradients))
        v = tuple(self.beta_2 * v + (1 - self.beta_2) * g * g
                  for v, g in zip(slots[1], gradients))
        rate = rate * tf.sqrt(1 - self.beta_2 ** t) / (1 - self.beta_1 ** t)
        return (m, v), [w - rate * mi / (tf.sqrt(vi) + self.epsilon)
                        for w, mi, vi in zip(weights, m, v)]


class Yogi(Optimizer):
    """Yogi (Zaheer et al. 2018; FedYogi in Reddi et al. 2021): Adam whose second moment moves
    additively, `v <- v - (1 - beta_2) * sign(v - g^2) * g^2`, from
    `initial_accumulator_value`."""

    def __init__(self, learning_rate=0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-3,
                 initial_accumulator_value=1e-6):
        super().__init__(learning_rate)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.initial_accumulator_value = float(initial_accumulator_value)

    def _slots(self, weights):
        return self._zeros(weights), self._zeros(weights, self.initial_accumulator_value)

    def _step(self, step, slots, weights, gradients, rate):
        tf = _tf()
        t = tf.cast(step, tf.float32)
        m = tuple(self.beta_1 * m + (1 - self.beta_1) * g for m, g in zip(slots[0], gradients))
        v = tuple(v - (1 - self.beta_2) * tf.sign(v - g * g) * g * g
                  for v, g in zip(slots[1], gradients))
        rate = rate * tf.sqrt(1 - self.beta_2 ** t) / (1 - self.beta_1 ** t)
        return (m, v), [w - rate * mi / (tf.sqrt(vi) + self.epsilon)
                        for w, mi, vi in zip(weights, m, v)]


class Adagrad(Optimizer):
    """Adagrad (Duchi et al.; FedAdagrad), as Keras defines it: the accumulator starts at
    `initial_accumulator_value`, `acc <- acc + g^2`, `w <- w - rate * g / (sqrt(acc) + eps)`."""

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7):
        super().__init__(learning_rate)
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.epsilon = float(epsilon)

    def _slots(self, weights):
        return (self._zeros(weights, self.initial_accumulator_value),)

    def _step(self, step, slots, weights, gradients, rate):
        tf = _tf()
        accumulators = tuple(a + g * g for a, g in zip(slots[0], gradients))
        return (accumulators,), [w - rate * g / (tf.sqrt(a) + self.epsilon)
                                 for w, g, a in zip(weights, gradients, accumulators)]


FUNCTIONAL = (SGD, Adam, Yogi, Adagrad)


def _keras_rate(optimizer, name):
    """A Keras optimizer's learning rate: a number, or its schedule object."""
    schedule = getattr(optimizer, "_learning_rate", None)
    try:
        from keras.optimizers.schedules import LearningRateSchedule
    except ImportError:  # pragma: no cover - Keras 2
        from tensorflow.keras.optimizers.schedules import LearningRateSchedule
    if isinstance(schedule, LearningRateSchedule) or callable(schedule) and not hasattr(
            schedule, "numpy"):
        return schedule
    rate = getattr(optimizer, "learning_rate", None)
    try:
        return float(np.asarray(rate))
    except (TypeError, ValueError):
        raise TypeError(f"The learning rate of {name} must be a number or a Keras "
                        f"LearningRateSchedule, found {rate!r}.") from None


def from_keras(optimizer):
    """The functional optimizer for a Keras optimizer object (SGD, Adam, Adagrad; a Yogi
    with Keras-style attributes), or `optimizer` itself when it already is one. A learning
    rate schedule is kept (evaluated per round); settings that cannot be honoured (weight
    decay, gradient clipping, EMA, AMSGrad) are an error."""
    if isinstance(optimizer, FUNCTIONAL):
        return optimizer
    name = type(optimizer).__name__
    if name not in ("SGD", "Adam", "Adagrad", "Yogi"):
        raise TypeError(f"Unsupported optimizer {name}: use tf.keras.optimizers.SGD, Adam or "
                        f"Adagrad, or learning.optimizers.SGD / Adam / Yogi / Adagrad.")
    for attribute, neutral in (("weight_decay", None), ("clipnorm", None),
                               ("global_clipnorm", None), ("clipvalue", None),
                               ("use_ema", False), ("amsgrad", False)):
        found = getattr(optimizer, attribute, neutral)
        if found not in (neutral, 0, 0.0):
            raise TypeError(f"{name}: {attribute}={found!r} is not supported by fcore's "
                            f"functional optimizers; remove it (or apply it in the model).")
    rate = _keras_rate(optimizer, name)

    def number(attribute):
        return float(np.asarray(getattr(optimizer, attribute)))

    if name == "SGD":
        return SGD(rate, number("momentum") if hasattr(optimizer, "momentum") else 0.0,
                   bool(getattr(optimizer, "nesterov", False)))
    if name == "Adam":
        return Adam(rate, number("beta_1"), number("beta_2"), number("epsilon"))
    if name == "Adagrad":
        return Adagrad(rate, number("initial_accumulator_value"), number("epsilon"))
    return Yogi(rate, number("beta_1"), number("beta_2"), number("epsilon"),
                number("initial_accumulator_value"))


def build(optimizer_fn, default):
    """The functional optimizer from an optional `optimizer_fn` (a no-argument function
    returning a Keras or functional optimizer), or `default`."""
    if optimizer_fn is None:
        return default
    if isinstance(optimizer_fn, FUNCTIONAL):
        return optimizer_fn
    if not callable(optimizer_fn):
        raise TypeError(f"Expected a function that returns an optimizer, found "
                        f"{optimizer_fn!r}.")
    return from_keras(optimizer_fn())
