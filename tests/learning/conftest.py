"""Shared fixtures for the learning tests: a tiny MNIST federation and model builders."""

import collections

import pytest

tf = pytest.importorskip("tensorflow")


@pytest.fixture(scope="session")
def tiny_federation():
    """Three clients of real MNIST digits (by label), two batches of 20 each."""
    from learning.data import ClientData
    clients, test = ClientData.from_mnist(split="by_label", num_clients=10, batch_size=20)
    data = [clients.client_batches(c)[:2] for c in clients.client_ids[:3]]
    return data, test


def make_keras_model():
    model = tf.keras.models.Sequential([
        tf.keras.Input(shape=(784,)),
        tf.keras.layers.Dense(32, activation="relu"),
        tf.keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(loss=tf.keras.losses.SparseCategoricalCrossentropy(),
                  optimizer=tf.keras.optimizers.SGD(0.1),
                  metrics=[tf.keras.metrics.SparseCategoricalAccuracy()])
    return model


INPUT_SPEC = collections.OrderedDict(x=tf.TensorSpec([None, 784], tf.float32),
                                     y=tf.TensorSpec([None], tf.int32))


@pytest.fixture
def keras_model_fn():
    import learning

    def model_fn():
        return learning.from_keras_model(make_keras_model(), input_spec=INPUT_SPEC)
    return model_fn

