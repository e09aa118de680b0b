"""A model's weights as fcore data: `<trainable=<...>,non_trainable=<...>>`, read from and
written to its variables; and exporting trained weights into a Keras model.

Keras models (`KerasModel`) have named weights, sorted by name
(`<dense/bias=float32[512],dense/kernel=float32[784,512],...>`); other models' variable lists
give unnamed structs in their own order."""

from __future__ import annotations

import numpy as np

import fcore
from learning.keras_model import KerasModel, canonical_weight_names


class ModelWeights:
    """The variables of a `learning.Model`, in the order of its weights type."""

    def __init__(self, model):
        names = getattr(model, "weight_names", None)
        self.trainable = _ordered(model.trainable_variables, names)
        self.non_trainable = _ordered(model.non_trainable_variables, names)

    @property
    def type_signature(self):
        return fcore.StructType([("trainable", _struct_type(self.trainable)),
                                 ("non_trainable", _struct_type(self.non_trainable))])

    @property
    def trainable_type(self):
        return _struct_type(self.trainable)

    @property
    def non_trainable_type(self):
        return _struct_type(self.non_trainable)

    def trainable_variables(self):
        return [v for _, v in self.trainable]

    def non_trainable_variables(self):
        return [v for _, v in self.non_trainable]

    def snapshot(self):
        """The current values as NumPy arrays: `(trainable list, non_trainable list)`."""
        return ([np.array(_value(v)) for _, v in self.trainable],
                [np.array(_value(v)) for _, v in self.non_trainable])

    def as_struct(self, trainable, non_trainable):
        """An `fcore.Struct` of the weights type from two lists of tensors."""
        return fcore.Struct([("trainable", pack(self.trainable, trainable)),
                             ("non_trainable", pack(self.non_trainable, non_trainable))])

    def assign(self, weights):
        """Assigns a weights value (`<trainable,non_trainable>`, as passed into a TF
        computation) to the variables."""
        for (_, variable), value in zip(self.trainable, weights[0]):
            variable.assign(value)
        for (_, variable), value in zip(self.non_trainable, weights[1]):
            variable.assign(value)


def pack(named_variables, tensors):
    return fcore.Struct([(name, t) for (name, _), t in zip(named_variables, tensors)])


def _ordered(variables, names):
    variables = list(variables)
    if names is None:
        return [(None, v) for v in variables]
    return sorted(((names[id(v)], v) for v in variables), key=lambda item: item[0])


def _struct_type(named_variables):
    return fcore.StructType([(name, fcore.TensorType(_dtype(v), tuple(v.shape)))
                             for name, v in named_variables])


def _dtype(variable):
    import tensorflow as tf
    return tf.as_dtype(variable.dtype)


def _value(variable):
    value = getattr(variable, "value", variable)
    value = value() if callable(value) and not hasattr(value, "numpy") else value
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


def assign_to_keras(model_weights, keras_model):
    """Writes trained weights (`state.model`: `<trainable=<...>,non_trainable=<...>>`) into a
    Keras model built like the one trained, matching weights by their canonical names."""
    names = canonical_weight_names(keras_model)
    by_name = {names[id(w)]: w for w in keras_model.weights}
    given = {}
    for part in (model_weights[0], model_weights[1]):
        for name, value in part.items():
            if name is None:
                raise ValueError("assign_to_keras needs named weights, as a Keras model's are.")
            given[name] = value
    missing = sorted(set(by_name) - set(given))
    extra = sorted(set(given) - set(by_name))
    if missing or extra:
        raise ValueError(f"The weights do not fit this Keras model: missing {missing}, "
                         f"unexpected {extra}.")
    for name, weight in by_name.items():
        value = np.asarray(given[name])
        if tuple(value.shape) != tuple(weight.shape):
            raise ValueError(f"Weight {name}: shape {value.shape} does not fit "
                             f"{tuple(weight.shape)}.")
        weight.assign(value)
    return keras_model


__all__ = ["ModelWeights", "assign_to_keras", "KerasModel"]
