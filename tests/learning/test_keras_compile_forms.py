"""Keras models compiled the ways Keras users write them: losses and metrics by name,
loss functions that give one loss per example, and `'accuracy'` resolved as Keras does."""

import numpy as np
import pytest
import tensorflow as tf

import learning
from support import mnist_spec, random_client_data


def mlp(outputs=10, activation="softmax"):
    return tf.keras.models.Sequential([tf.keras.Input(shape=(784,)),
                                       tf.keras.layers.Dense(8, activation="relu"),
                                       tf.keras.layers.Dense(outputs, activation=activation)])


def one_round(model_fn, data):
    process = learning.build_federated_averaging_process(model_fn)
    return process.next(process.initialize(), data)


def test_a_model_compiled_with_names_trains_and_reports_accuracy_by_that_name():
    def model_fn():
        model = mlp()
        model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd",
                      metrics=["accuracy"])
        return learning.from_compiled_keras_model(model, random_client_data(1)[0][0])

    _, metrics = one_round(model_fn, random_client_data(3))
    assert str(metrics).startswith("<accuracy=") and ",loss=" in str(metrics)
    assert 0.0 <= float(metrics.accuracy) <= 1.0 and np.isfinite(float(metrics.loss))


@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy",
                                  tf.keras.losses.sparse_categorical_crossentropy,
                                  tf.keras.losses.SparseCategoricalCrossentropy()])
def test_loss_by_name_function_or_object_gives_the_same_batch_mean(loss):
    batch = random_client_data(1, seed=2)[0][0]
    tf.keras.utils.set_random_seed(0)
    model = learning.from_keras_model(mlp(), input_spec=mnist_spec(), loss=loss)
    output = model.forward_pass(batch, training=False)
    expected = tf.keras.losses.SparseCategoricalCrossentropy()(
        batch["y"], model.keras_model(batch["x"]))
    assert float(output.loss) == pytest.approx(float(expected), rel=1e-6)


def test_accuracy_follows_the_labels_as_in_keras():
    binary = learning.from_keras_model(
        mlp(1, "sigmoid"), input_spec=mnist_spec(), loss="binary_crossentropy",
        metrics=["accuracy"])
    sparse = learning.from_keras_model(mlp(), input_spec=mnist_spec(),
                                       loss="sparse_categorical_crossentropy", metrics=["acc"])
    one_hot = learning.from_keras_model(
        mlp(), input_spec=dict(x=tf.TensorSpec([None, 784]), y=tf.TensorSpec([None, 10])),
        loss="categorical_crossentropy", metrics=["accuracy"])
    assert type(one_hot._metrics[0]).__name__ == "CategoricalAccuracy"
    assert type(binary._metrics[0]).__name__ == "BinaryAccuracy"
    assert type(sparse._metrics[0]).__name__ == "SparseCategoricalAccuracy"
    assert sparse._metrics[0].name == "acc"


def test_a_metric_by_name_is_reported_by_that_name_and_vector_metrics_keep_their_shape():
    model = learning.from_keras_model(
        mlp(), input_spec=mnist_spec(), loss="sparse_categorical_crossentropy",
        metrics=["mae", tf.keras.metrics.Precision(thresholds=[0.3, 0.7], name="pair")])
    assert str(model.federated_output_computation.type_signature).startswith(
        "({<mae=float32,pair=float32[2],loss=float32,num_examples=float32>}@CLIENTS")
