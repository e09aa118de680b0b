"""Federated averaging: training, the exact server update, bad clients, sampling."""

import collections

import numpy as np
import pytest
import tensorflow as tf

import fcore
import learning


def test_two_rounds_on_a_tiny_split_decrease_the_loss(tiny_federation, keras_model_fn):
    data, _ = tiny_federation
    process = learning.build_federated_averaging_process(keras_model_fn)
    state = process.initialize()
    losses = []
    for _ in range(3):
        state, metrics = process.next(state, data)
        losses.append(float(metrics.loss))
    assert losses[2] < losses[1] < losses[0]
    assert str(metrics).startswith("<sparse_categorical_accuracy=")
    assert process.next.last_report == learning.RoundReport(clients=3, empty=0, non_finite=0)


def test_next_returns_what_the_plain_computation_returns_and_reports_on_the_side(
        tiny_federation, keras_model_fn):
    data, _ = tiny_federation
    process = learning.build_federated_averaging_process(keras_model_fn)
    state = process.initialize()
    plain = fcore.Computation.__call__(process.next, state, data)  # no report
    reported = process.next(state, data)
    assert type(reported) is type(plain) and len(reported) == 2
    np.testing.assert_allclose(reported[1].loss, plain[1].loss, rtol=1e-6)
    assert "round_report" not in str(process.next.type_signature)
    with pytest.raises(fcore.TypeMismatchError) as info:
        process.next(state, [[collections.OrderedDict(x=np.zeros((2, 3), np.float32),
                                                      y=np.zeros(2, np.int32))]])
    assert f"Calling next_round ({process.next.type_signature})" in str(info.value)


class LinearModel(learning.Model):
    """y ≈ x·w + b with a mean squared error; metrics: mean loss weighted by examples."""

    def __init__(self):
        self.w = tf.Variable(np.array([0.5, -1.0], np.float32), name="w")
        self.b = tf.Variable(0.25, name="b")
        self.num_examples = tf.Variable(0.0, trainable=False)
        self.loss_sum = tf.Variable(0.0, trainable=False)

    trainable_variables = property(lambda self: [self.w, self.b])
    non_trainable_variables = property(lambda self: [])
    local_variables = property(lambda self: [self.num_examples, self.loss_sum])
    input_spec = property(lambda self: collections.OrderedDict(
        x=tf.TensorSpec([None, 2], tf.float32), y=tf.TensorSpec([None], tf.float32)))

    def forward_pass(self, batch, training=True):
        predictions = tf.linalg.matvec(batch["x"], self.w) + self.b
        loss = tf.reduce_mean((predictions - batch["y"]) ** 2)
        n = tf.cast(tf.shape(batch["y"])[0], tf.float32)
        self.num_examples.assign_add(n)
        self.loss_sum.assign_add(loss * n)
        return learning.BatchOutput(loss=loss, predictions=predictions, num_examples=n)

    def report_local_outputs(self):
        return collections.OrderedDict(loss=self.loss_sum / self.num_examples,
                                       num_examples=self.num_examples)

    @property
    def federated_output_computation(self):
        return mean_loss


@fcore.federated_computation
def mean_loss(outputs):
    return collections.OrderedDict(loss=fcore.federated_mean(outputs.loss, outputs.num_examples))


def linear_batch(x, y):
    return collections.OrderedDict(x=np.asarray(x, np.float32), y=np.asarray(y, np.float32))


def hand_update(w, b, x, y, lr):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    error = x @ w + b - y
    return w - lr * 2 * x.T @ error / len(y), b - lr * 2 * error.mean()


def test_server_update_is_the_example_weighted_mean_of_client_models():
    lr = 0.05
    clients = [([[1.0, 2.0], [0.5, -1.0], [3.0, 0.0]], [1.0, -2.0, 0.5]),
               ([[-1.0, 1.0]], [4.0])]
    process = learning.build_federated_averaging_process(
        LinearModel, client_optimizer_fn=lambda: tf.keras.optimizers.SGD(lr))
    state = process.initialize()
    w0, b0 = np.array([0.5, -1.0]), 0.25
    new_state, metrics = process.next(state, [[linear_batch(*c)] for c in clients])
    updates = [hand_update(w0, b0, x, y, lr) for x, y in clients]
    counts = np.array([3.0, 1.0])
    expected_w = sum(n * u[0] for n, u in zip(counts, updates)) / counts.sum()
    expected_b = sum(n * u[1] for n, u in zip(counts, updates)) / counts.sum()
    trained = new_state.model.trainable
    np.testing.assert_allclose(trained[0], expected_w, atol=1e-6)
    np.testing.assert_allclose(trained[1], expected_b, atol=1e-6)
    assert int(new_state.optimizer_state[0]) == 1
    losses = [np.mean((np.asarray(x) @ w0 + b0 - np.asarray(y)) ** 2) for x, y in clients]
    np.testing.assert_allclose(metrics.loss, np.average(losses, weights=counts), rtol=1e-6)


def test_empty_client_is_left_out_and_reported():
    process = learning.build_federated_averaging_process(
        LinearModel, client_optimizer_fn=lambda: tf.keras.optimizers.SGD(0.05))
    state = process.initialize()
    good = [linear_batch([[1.0, 2.0]], [1.0])]
    alone, _ = process.next(state, [good])
    with pytest.warns(RuntimeWarning, match="1 of 2 clients left out"):
        both, metrics = process.next(state, [good, []])
    assert process.next.last_report == learning.RoundReport(clients=2, empty=1, non_finite=0)
    np.testing.assert_allclose(both.model.trainable[0], alone.model.trainable[0], atol=1e-7)
    assert np.isfinite(metrics.loss)


def test_non_finite_update_is_rejected_and_the_round_goes_on():
    process = learning.build_federated_averaging_process(
        LinearModel, client_optimizer_fn=lambda: tf.keras.optimizers.SGD(0.05))
    state = process.initialize()
    good = [linear_batch([[1.0, 2.0]], [1.0])]
    poisoned = [linear_batch([[np.inf, 1.0]], [1.0])]
    alone, _ = process.next(state, [good])
    with pytest.warns(RuntimeWarning, match="1 with a non-finite update"):
        mixed, metrics = process.next(state, [good, poisoned])
    np.testing.assert_allclose(mixed.model.trainable[0], alone.model.trainable[0], atol=1e-7)
    assert np.all(np.isfinite(mixed.model.trainable[0]))
    assert np.isfinite(metrics.loss)


def test_state_is_unchanged_when_no_client_remains():
    process = learning.build_federated_averaging_process(
        LinearModel, client_optimizer_fn=lambda: tf.keras.optimizers.SGD(0.05))
    state = process.initialize()
    with pytest.warns(RuntimeWarning):
        new_state, _ = process.next(state, [[], [linear_batch([[np.nan, 1.0]], [1.0])]])
    np.testing.assert_array_equal(new_state.model.trainable[0], state.model.trainable[0])
    assert int(new_state.optimizer_state[0]) == int(state.optimizer_state[0])


def test_data_that_does_not_match_the_input_spec_fails_before_training(keras_model_fn):
    process = learning.build_federated_averaging_process(keras_model_fn)
    state = process.initialize()
    wrong = [[collections.OrderedDict(x=np.zeros((2, 28, 28), np.float32),
                                      y=np.zeros(2, np.int32))]]
    with pytest.raises(fcore.TypeMismatchError) as info:
        process.next(state, wrong)
    message = str(info.value)
    assert "<x=float32[?,784],y=int32[?]>" in message and "(2, 28, 28)" in message
    assert process.next.last_report is None  # nothing ran


def test_tf_datasets_feed_a_round(tiny_federation, keras_model_fn):
    data, _ = tiny_federation
    datasets = [tf.data.Dataset.from_tensor_slices(collections.OrderedDict(
        x=np.concatenate([b["x"] for b in client]),
        y=np.concatenate([b["y"] for b in client]))).batch(20) for client in data]
    process = learning.build_federated_averaging_process(keras_model_fn)
    state = process.initialize()
    from_lists, _ = process.next(state, data)
    from_datasets, _ = process.next(state, datasets)
    for a, b in zip(from_lists.model.trainable, from_datasets.model.trainable):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_client_sampling_is_seeded(tiny_federation):
    from learning.data import sample_clients
    ids = [f"client_{i}" for i in range(10)]
    first = sample_clients(ids, 3, seed=1, round_num=1)
    assert first == sample_clients(ids, 3, seed=1, round_num=1)
    assert len(set(first)) == 3
    rounds = {tuple(sample_clients(ids, 3, seed=1, round_num=r)) for r in range(1, 6)}
    assert len(rounds) > 1


def test_server_optimizer_with_momentum_keeps_its_state(tiny_federation, keras_model_fn):
    data, _ = tiny_federation
    process = learning.build_federated_averaging_process(
        keras_model_fn, server_optimizer_fn=lambda: tf.keras.optimizers.SGD(1.0, momentum=0.9))
    assert "optimizer_state=<int64,<float32[32],float32[784,32]," in str(
        process.initialize.type_signature)
    state, _ = process.next(process.initialize(), data)
    assert int(state.optimizer_state[0]) == 1


def test_model_fn_must_build_a_model():
    with pytest.raises(TypeError, match="must return a learning.Model"):
        learning.build_federated_averaging_process(lambda: tf.keras.Sequential())


def test_unsupported_optimizer_is_named():
    with pytest.raises(TypeError, match="Unsupported optimizer RMSprop"):
        learning.build_federated_averaging_process(
            LinearModel, client_optimizer_fn=lambda: tf.keras.optimizers.RMSprop())

