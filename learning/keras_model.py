"""Wrapping Keras models (Keras 3 `tf.keras`, or `tf_keras`) as `learning.Model`s.

Weights are named `layer/variable` with the layer names a fresh Keras session would give
(`dense`, `dense_1`, ...), whatever names Keras gave this instance (`dense_2`, ...), so the
type of a model's weights is the same however many times `model_fn` is called."""

from __future__ import annotations

import collections

import numpy as np

from learning.models import BatchOutput, Model


def canonical_weight_names(keras_model):
    """`{id(variable): 'layer/name'}` for every weight of `keras_model`, with the layers named
    per class in order (`dense`, `dense_1`, `batch_normalization`, ...)."""
    counts = collections.Counter()
    names = {}
    for layer in _layers(keras_model):
        own = [w for w in layer.weights if id(w) not in names]
        if not own:
            continue
        base = _snake_case(type(layer).__name__)
        layer_name = base if counts[base] == 0 else f"{base}_{counts[base]}"
        counts[base] += 1
        for weight in own:
            short = weight.name.split("/")[-1].split(":")[0]
            names[id(weight)] = f"{layer_name}/{short}"
    missing = [w for w in keras_model.weights if id(w) not in names]
    for weight in missing:
        names[id(weight)] = weight.name.split(":")[0]
    taken = collections.Counter(names.values())
    duplicates = [n for n, c in taken.items() if c > 1]
    if duplicates:
        raise ValueError(f"Keras weights with the same name {duplicates}; give the variables "
                         f"distinct names.")
    return names


def _layers(model):
    flatten = getattr(model, "_flatten_layers", None)
    if flatten is not None:
        return [layer for layer in flatten(include_self=False, recursive=True)]
    return list(model.layers)


def _snake_case(name):
    out = []
    for i, char in enumerate(name):
        if char.isupper() and i and (not name[i - 1].isupper() or
                                     (i + 1 < len(name) and name[i + 1].islower())):
            out.append("_")
        out.append(char.lower())
    return "".join(out)


def _spec_of(batch):
    import tensorflow as tf
    return tf.nest.map_structure(
        lambda t: tf.TensorSpec([None] + list(np.shape(t))[1:], tf.as_dtype(np.asarray(t).dtype)
                                if not hasattr(t, "dtype") or isinstance(t, np.ndarray)
                                else t.dtype), batch)


class KerasModel(Model):
    """A Keras model with a loss and metrics, as a `learning.Model`.

    Local statistics: the number of examples, the loss sum, and each metric's variables.
    `report_local_outputs()` gives each metric's value, the mean loss and the number of
    examples; `federated_output_computation` averages them over clients weighted by their
    examples, giving `<metric...,loss>` at the server."""

    def __init__(self, keras_model, input_spec, loss, metrics=(), optimizer=None):
        import tensorflow as tf
        if loss is None:
            raise ValueError("A Keras model needs a loss: compile the model or pass loss=.")
        self._keras = keras_model
        self._input_spec = input_spec
        self._loss = tf.keras.losses.get(loss) if isinstance(loss, str) else loss
        self._metrics = [_fresh(m, keras_model, input_spec) for m in metrics]
        self.optimizer = optimizer  # the compiled optimizer, the default for client training
        self._num_examples = tf.Variable(0.0, trainable=False, name="num_examples")
        self._loss_sum = tf.Variable(0.0, trainable=False, name="loss_sum")
        self.weight_names = canonical_weight_names(keras_model)
        self._output_computation = _weighted_metrics_computation(
            [(m.name, _result_shape(m)) for m in self._metrics] + [("loss", ())])

    @property
    def keras_model(self):
        return self._keras

    @property
    def trainable_variables(self):
        return list(self._keras.trainable_weights)

    @property
    def non_trainable_variables(self):
        return list(self._keras.non_trainable_weights)

    @property
    def local_variables(self):
        return [self._num_examples, self._loss_sum] + [v for m in self._metrics
                                                       for v in m.variables]

    @property
    def input_spec(self):
        return self._input_spec

    def forward_pass(self, batch, training=True):
        import tensorflow as tf
        x, y = _features_and_labels(batch)
        predictions = self._keras(x, training=training)
        # A Loss object reduces over the batch itself (by default to the mean); a loss
        # function (`'mse'`, ...) gives one loss per example, averaged here as Keras does.
        loss = tf.reduce_mean(tf.cast(self._loss(y, predictions), tf.float32))
        num_examples = tf.cast(tf.shape(y)[0], tf.float32)
        self._num_examples.assign_add(num_examples)
        self._loss_sum.assign_add(loss * num_examples)
        for metric in self._metrics:
            metric.update_state(y, predictions)
        return BatchOutput(loss=loss, predictions=predictions, num_examples=num_examples)

    def report_local_outputs(self):
        import tensorflow as tf
        outputs = collections.OrderedDict(
            (m.name, tf.cast(m.result(), tf.float32)) for m in self._metrics)
        outputs["loss"] = tf.math.divide_no_nan(self._loss_sum.read_value(),
                                                self._num_examples.read_value())
        outputs["num_examples"] = self._num_examples.read_value()
        return outputs

    @property
    def federated_output_computation(self):
        return self._output_computation


def _features_and_labels(batch):
    if isinstance(batch, collections.abc.Mapping):
        return batch["x"], batch["y"]
    x, y = batch
    return x, y


def _fresh(metric, keras_model, input_spec):
    """A new metric object like `metric` (a metric object, class, or Keras name). A name is
    also the metric's reported name, as in Keras's `compile`; there `'accuracy'` (or `'acc'`)
    means the accuracy that fits the labels: sparse categorical for class indices, binary for
    one output, else categorical."""
    import tensorflow as tf
    if isinstance(metric, str) and metric.lower() in ("accuracy", "acc"):
        kind = {True: tf.keras.metrics.SparseCategoricalAccuracy,
                False: tf.keras.metrics.CategoricalAccuracy,
                None: tf.keras.metrics.BinaryAccuracy}[_sparse_labels(keras_model, input_spec)]
        return kind(name=metric)
    if isinstance(metric, str):
        found = tf.keras.metrics.get(metric)
        return type(found).from_config({**found.get_config(), "name": metric}) \
            if hasattr(found, "get_config") else found
    if isinstance(metric, type):
        return metric()
    return type(metric).from_config(metric.get_config())


def _sparse_labels(keras_model, input_spec):
    """True if the labels are class indices (fewer dimensions than the predictions), False
    for one-hot labels, None for a single output (binary)."""
    outputs = getattr(keras_model, "output_shape", None)
    labels = _features_and_labels(input_spec)[1] if input_spec is not None else None
    shape = getattr(labels, "shape", None)
    rank = getattr(shape, "rank", None) if hasattr(shape, "rank") else \
        (len(shape) if shape is not None else None)
    if not isinstance(outputs, tuple) or rank is None:
        return True  # the common case: integer class labels
    if outputs[-1] == 1:
        return None
    return rank < len(outputs) or shape[-1] == 1


def _result_shape(metric):
    """The shape of a metric's result (a vector for some, e.g. per-threshold precision)."""
    import tensorflow as tf
    return tuple(tf.convert_to_tensor(metric.result()).shape)


def _weighted_metrics_computation(shapes):
    """`({<metric...,loss,num_examples>}@CLIENTS -> <metric@SERVER...,loss@SERVER>)`: each
    value averaged over the clients, weighted by their examples. `shapes`: `(name, shape)`
    of each value but the number of examples."""
    import fcore
    names = [name for name, _ in shapes]
    outputs_type = fcore.StructType(
        [(name, fcore.TensorType(np.float32, shape)) for name, shape in shapes] +
        [("num_examples", np.float32)], collections.OrderedDict)

    @fcore.federated_computation(fcore.FederatedType(outputs_type, fcore.CLIENTS))
    def keras_metrics(outputs):
        return collections.OrderedDict(
            (name, fcore.federated_mean(outputs[name], outputs.num_examples)) for name in names)
    return keras_metrics


def from_keras_model(keras_model, sample_batch=None, *, input_spec=None, loss=None,
                     metrics=None, optimizer=None):
    """Wraps a Keras model. Give the batch structure as `input_spec` (`tf.TensorSpec`s, e.g.
    an OrderedDict with `x` and `y`) or as a `sample_batch`. `loss` and `metrics` default to
    the model's compiled ones, if it was compiled."""
    if input_spec is None:
        if sample_batch is None:
            raise ValueError("from_keras_model needs input_spec= or a sample_batch.")
        input_spec = _spec_of(sample_batch)
    compiled = _compiled(keras_model)
    return KerasModel(keras_model, input_spec,
                      loss if loss is not None else compiled["loss"],
                      metrics if metrics is not None else compiled["metrics"],
                      optimizer if optimizer is not None else compiled["optimizer"])


def from_compiled_keras_model(compiled_model, sample_batch):
    """Wraps a compiled Keras model, with its loss, metrics and optimizer (the default for
    client training), for batches shaped like `sample_batch`."""
    compiled = _compiled(compiled_model)
    if compiled["loss"] is None:
        raise ValueError("from_compiled_keras_model: the model is not compiled; call "
                         "model.compile(loss=..., optimizer=..., metrics=...) first.")
    return from_keras_model(compiled_model, sample_batch)


def _compiled(model):
    config = getattr(getattr(model, "_compile_config", None), "config", None) or {}
    loss = config.get("loss", getattr(model, "loss", None))
    metrics = config.get("metrics")
    if metrics is None:  # tf_keras keeps them elsewhere
        metrics = getattr(getattr(model, "compiled_metrics", None), "_user_metrics", None)
    if isinstance(metrics, dict):
        raise ValueError("Metrics given per output (a dict) are not supported; pass a list.")
    return {"loss": loss, "metrics": list(metrics or []),
            "optimizer": getattr(model, "optimizer", None)}
