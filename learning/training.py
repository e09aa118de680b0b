"""The TensorFlow work of one client: load the broadcast weights into the model, run over the
client's data, and report. Shared by federated averaging and federated evaluation."""

from __future__ import annotations

import collections

from learning.optimizers import SGD


def tf_variable(variable):
    """The `tf.Variable` behind a Keras 3 variable (or the variable itself)."""
    import tensorflow as tf
    return variable if isinstance(variable, tf.Variable) else getattr(variable, "value", variable)


def reset_local_variables(model):
    for variable in model.local_variables:
        variable.assign(_zeros_like(variable))


def _zeros_like(variable):
    import tensorflow as tf
    return tf.zeros(variable.shape, tf.as_dtype(variable.dtype))


def batch_size(batch, output):
    import tensorflow as tf
    if output is not None and getattr(output, "num_examples", None) is not None:
        return tf.cast(output.num_examples, tf.float32)
    first = tf.nest.flatten(batch)[0]
    return tf.cast(tf.shape(first)[0], tf.float32)


def train(model, dataset, optimizer, use_model_step, rate=None, proximal_strength=0.0):
    """Trains on every batch of `dataset`; returns the number of examples seen.

    With `use_model_step`, each batch goes to the model's own `train_on_batch`; otherwise a
    forward pass under a gradient tape and a step of the functional `optimizer`, at learning
    rate `rate` (default: its rate at step 0). `proximal_strength` mu > 0 adds FedProx's
    proximal term `mu/2 * ||w - w0||^2` to the loss, w0 the weights at the start."""
    import tensorflow as tf
    count = tf.constant(0.0)
    if use_model_step:
        for batch in dataset:
            output = model.train_on_batch(batch)
            count += batch_size(batch, output)
        return count
    variables = [tf_variable(v) for v in model.trainable_variables]
    state = optimizer.initialize([v.read_value() for v in variables])
    rate = optimizer.rate(state[0]) if rate is None else rate
    start = [tf.identity(v.read_value()) for v in variables] if proximal_strength else None
    plain_sgd = isinstance(optimizer, SGD) and not optimizer.momentum
    for batch in dataset:
        with tf.GradientTape() as tape:
            output = model.forward_pass(batch, training=True)
        current = [v.read_value() for v in variables]
        gradients = tape.gradient(output.loss, variables)
        gradients = [tf.zeros_like(c) if g is None else tf.convert_to_tensor(g)
                     for c, g in zip(current, gradients)]
        if proximal_strength:
            gradients = [g + proximal_strength * (c - s)
                         for g, c, s in zip(gradients, current, start)]
        if plain_sgd:  # update in place
            state = (state[0] + 1,)
            for variable, gradient in zip(variables, gradients):
                variable.assign_sub(rate * gradient)
        else:
            state, new = optimizer.apply(state, current, gradients, rate)
            for variable, value in zip(variables, new):
                variable.assign(value)
        count += batch_size(batch, output)
    return count


def differences_finite(after, before):
    """Whether every element of every `after[k] - before[k]` is finite (a boolean tensor), as
    `tf.reduce_all` of `tf.math.is_finite` over the differences says, but in the common case
    without computing the differences or reducing over them (XLA's reduction of a large tensor
    is slow on CPU, and the differences would be written out on their own).

    Instead each float32/float64 tensor is multiplied by a vector of alternating 8 and -8 (a
    matrix-vector product: one vectorised read). If every result is finite, every element x is
    finite with |x| < max/2: an infinity or a NaN survives any sum, and with |x| >= max/2,
    8|x| exceeds any finite partial sum by over twice `max`, so adding 8x to it (rounded or
    fused) overflows; the alternating signs leave no common factor for a compiler to take out
    of the sum. Then every difference is below `max` in magnitude: finite. Otherwise (a value
    not finite or that large, or a sum that overflowed) the differences are checked exactly, in
    a branch the common case skips."""
    import numpy as np
    import tensorflow as tf
    after, before = list(after), list(before)
    if not after:
        return tf.constant(True)

    def exact():
        return tf.reduce_all([tf.reduce_all(tf.math.is_finite(a - b))
                              for a, b in zip(after, before)])
    tensors = after + before
    if not all(t.shape.is_fully_defined() and t.dtype in (tf.float32, tf.float64)
               for t in tensors):
        return exact()  # other dtypes may be summed in a wider one
    bounded = []
    for t in tensors:
        rows = tf.reshape(t, [-1, t.shape[-1]]) if t.shape.rank >= 2 else tf.reshape(t, [1, -1])
        signs = np.resize(np.array([8, -8], t.dtype.as_numpy_dtype), (rows.shape[-1], 1))
        bounded.append(tf.math.is_finite(tf.reduce_sum(tf.matmul(rows, signs))))
    return tf.cond(tf.reduce_all(bounded), lambda: tf.constant(True), exact)


def client_delta(trained, initial, count):
    """`(delta, keep, finite)` of a client's training: `finite` says whether `trained -
    initial` is finite, `keep` whether the client counts (finite, and it had examples);
    `delta` is `trained - initial`, or zeros where it does not count. A select, not a
    branch: compiled, it fuses with the subtraction into the weighted sum over clients, so
    the delta is never written out on its own."""
    import tensorflow as tf
    finite = differences_finite(trained, initial)
    keep = tf.logical_and(finite, count > 0)
    return [tf.where(keep, t - i, tf.zeros([], t.dtype)) for t, i in zip(trained, initial)], \
        keep, finite


def gradient(model, dataset, variables):
    """The mean gradient of the loss with respect to `variables` over every example of
    `dataset` at the model's current weights (each batch's mean-loss gradient weighted by its
    size), and the number of examples: FedSGD's client work."""
    import tensorflow as tf
    total = tuple(tf.zeros_like(v.read_value()) for v in variables)  # a tuple: autograph
    # would stack a list
    count = tf.constant(0.0)
    for batch in dataset:
        with tf.GradientTape() as tape:
            output = model.forward_pass(batch, training=True)
        gradients = tape.gradient(output.loss, variables)
        size = batch_size(batch, output)
        total = tuple(t if g is None else t + size * tf.convert_to_tensor(g)
                      for t, g in zip(total, gradients))
        count += size
    return [tf.math.divide_no_nan(t, count) for t in total], count


def evaluate(model, dataset):
    """Runs the forward pass (not training) over `dataset`."""
    for batch in dataset:
        model.forward_pass(batch, training=False)


def zero_weight_outputs(outputs, keep):
    """`outputs` (the client's `report_local_outputs()`), with its `num_examples` set to zero
    unless `keep`, so that weighted means over clients leave a rejected client out."""
    import tensorflow as tf
    if isinstance(outputs, collections.abc.Mapping) and "num_examples" in outputs:
        outputs = type(outputs)(outputs)  # a copy of the same kind: its order decides the type
        count = outputs["num_examples"]
        outputs["num_examples"] = tf.where(keep, count, tf.zeros_like(count))
    return outputs
