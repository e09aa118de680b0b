"""A tf.Variable created inside a tf_computation is refused when the computation is defined,
with an fcore error that says what to write instead (TF's own errors say neither)."""

import collections

import numpy as np
import pytest
import tensorflow as tf

import fcore

MODEL = collections.OrderedDict(w=fcore.TensorType(np.float32, [2]))


def test_a_variable_started_from_the_arguments_is_refused():
    with pytest.raises(TypeError, match=r"(?s)creates no tf.Variable.*tf.GradientTape.*"
                                        r"in TF computation 'batch_train'"):
        @fcore.tf_computation(MODEL, np.float32)
        def batch_train(initial_model, learning_rate):
            w = tf.Variable(initial_model["w"])
            w.assign_sub(learning_rate * w)
            return collections.OrderedDict(w=w.read_value())


def test_a_variable_made_on_every_call_is_refused():
    with pytest.raises(TypeError, match="creates no tf.Variable"):
        @fcore.tf_computation(np.float32)
        def counter(x):
            v = tf.Variable(0.0)
            v.assign_add(x)
            return v.read_value()


def test_the_suggested_form_works():
    @fcore.tf_computation(MODEL, np.float32)
    def batch_train(initial_model, learning_rate):
        w = tf.identity(initial_model["w"])
        with tf.GradientTape() as tape:
            tape.watch(w)
            loss = tf.reduce_sum(w * w)
        return collections.OrderedDict(w=w - learning_rate * tape.gradient(loss, w))
    result = batch_train(collections.OrderedDict(w=np.ones(2, np.float32)), 0.25)
    np.testing.assert_allclose(result["w"], [0.5, 0.5])
