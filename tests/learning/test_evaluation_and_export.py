"""Federated evaluation, exporting weights into Keras, and the custom tutorial model (the main
job itself: test_main_job.py)."""

import collections

import numpy as np
import pytest
import tensorflow as tf

import learning
from learning import mnist

import support

def small_keras_model():
    return support.small_keras_model(units=32)


def model_fn():
    return support.small_model_fn(units=32)


def test_federated_evaluation_matches_keras_on_the_exported_weights(tiny_federation):
    data, (test_x, test_y) = tiny_federation
    process = learning.build_federated_averaging_process(model_fn)
    state, _ = process.next(process.initialize(), data)
    test_batches = [collections.OrderedDict(x=test_x[i:i + 50], y=test_y[i:i + 50])
                    for i in range(0, 200, 50)]
    evaluation = learning.build_federated_evaluation(model_fn)
    metrics = evaluation(state.model, [test_batches[:2], test_batches[2:]])
    keras_model = learning.assign_to_keras(state.model, small_keras_model())
    loss, accuracy = keras_model.evaluate(test_x[:200], test_y[:200], verbose=0)
    np.testing.assert_allclose(metrics.sparse_categorical_accuracy, accuracy, atol=1e-6)
    np.testing.assert_allclose(metrics.loss, loss, rtol=1e-5)


def test_evaluation_does_not_train(tiny_federation):
    data, _ = tiny_federation
    state = learning.build_federated_averaging_process(model_fn).initialize()
    evaluation = learning.build_federated_evaluation(model_fn)
    first = evaluation(state.model, data)
    assert evaluation(state.model, data) == first


def test_export_names_must_fit_the_keras_model():
    state = learning.build_federated_averaging_process(model_fn).initialize()
    other = tf.keras.models.Sequential([tf.keras.Input(shape=(784,)),
                                        tf.keras.layers.Dense(10)])
    with pytest.raises(ValueError, match="missing .*unexpected .*dense_1/bias"):
        learning.assign_to_keras(state.model, other)


def test_from_keras_model_takes_loss_and_metrics_for_an_uncompiled_model(tiny_federation):
    data, _ = tiny_federation

    def uncompiled():
        model = tf.keras.models.Sequential([tf.keras.Input(shape=(784,)),
                                            tf.keras.layers.Dense(10, activation="softmax")])
        return learning.from_keras_model(
            model, data[0][0], loss=tf.keras.losses.SparseCategoricalCrossentropy(),
            metrics=[tf.keras.metrics.SparseCategoricalAccuracy(name="acc")])
    process = learning.build_federated_averaging_process(
        uncompiled, client_optimizer_fn=lambda: tf.keras.optimizers.SGD(0.1))
    assert str(process.initialize.type_signature) == (
        "( -> <model=<trainable=<dense/bias=float32[10],dense/kernel=float32[784,10]>,"
        "non_trainable=<>>,optimizer_state=<int64>>@SERVER)")
    _, metrics = process.next(process.initialize(), data)
    assert metrics.names() == ("acc", "loss")


def test_uncompiled_model_needs_a_loss():
    model = tf.keras.models.Sequential([tf.keras.Input(shape=(784,)), tf.keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="not compiled"):
        learning.from_compiled_keras_model(model, collections.OrderedDict(
            x=np.zeros((1, 784), np.float32), y=np.zeros(1, np.int32)))


def test_the_tutorials_custom_model_trains(tiny_federation):
    data, _ = tiny_federation
    _, trainable_model = mnist.define_custom_model()
    process = learning.build_federated_averaging_process(trainable_model)
    assert str(process.initialize.type_signature) == (
        "( -> <model=<trainable=<float32[784,10],float32[10]>,non_trainable=<>>,"
        "optimizer_state=<int64>>@SERVER)")
    assert str(process.next.type_signature).endswith(
        "<accuracy=float32,loss=float32,num_examples=float32>@SERVER>)")
    state = process.initialize()
    losses = []
    for _ in range(2):
        state, metrics = process.next(state, data)
        losses.append(float(metrics.loss))
    assert str(metrics).startswith("<accuracy=") and "num_examples=120.0>" in str(metrics)
    assert losses[1] < losses[0]


def test_the_custom_model_without_train_on_batch_uses_the_client_optimizer(tiny_federation):
    data, _ = tiny_federation
    plain_model, _ = mnist.define_custom_model()
    process = learning.build_federated_averaging_process(
        plain_model, client_optimizer_fn=lambda: learning.optimizers.SGD(0.1))
    state, metrics = process.next(process.initialize(), data)
    assert float(metrics.num_examples) == 120.0
    assert np.abs(state.model.trainable[0]).sum() > 0


def test_fcore_import_stays_free_of_tensorflow_with_learning():
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", "import fcore, learning, learning.mnist, sys; "
                          "print('tensorflow' in sys.modules)"], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
