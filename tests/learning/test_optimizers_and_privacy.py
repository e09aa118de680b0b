"""learning.optimizers against Keras and NumPy; learning.privacy against dp-accounting."""

import numpy as np
import pytest

from learning import optimizers, privacy


def run_steps(functional, keras, steps=4):
    import tensorflow as tf
    variable = tf.Variable(np.array([1.0, -2.0, 0.5], np.float32))
    state = functional.initialize([variable.read_value()])
    weights = [variable.read_value()]
    for i in range(steps):
        gradient = [tf.constant([0.5, -0.25, 1.0]) * (i + 1)]
        state, weights = functional.apply(state, weights, gradient)
        if keras is not None:
            keras.apply_gradients(zip(gradient, [variable]))
    return weights[0].numpy(), variable.numpy(), state


@pytest.mark.parametrize("make", [
    lambda tf: tf.keras.optimizers.SGD(0.1),
    lambda tf: tf.keras.optimizers.SGD(0.1, momentum=0.9),
    lambda tf: tf.keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    lambda tf: tf.keras.optimizers.Adam(0.01),
    lambda tf: tf.keras.optimizers.Adagrad(0.1),
    lambda tf: tf.keras.optimizers.SGD(
        tf.keras.optimizers.schedules.ExponentialDecay(0.1, 1, 0.5)),
    lambda tf: tf.keras.optimizers.Adam(
        tf.keras.optimizers.schedules.PiecewiseConstantDecay([1, 2], [0.1, 0.01, 0.001])),
])
def test_keras_optimizers_are_read_exactly(make):
    import tensorflow as tf
    keras = make(tf)
    ours, theirs, _ = run_steps(optimizers.from_keras(keras), keras)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7)


def test_yogi_follows_its_update_rule():
    yogi = optimizers.Yogi(0.1, beta_1=0.9, beta_2=0.99, epsilon=1e-3,
                           initial_accumulator_value=1e-6)
    ours, _, state = run_steps(yogi, None, steps=3)
    w = np.array([1.0, -2.0, 0.5])
    m, v = np.zeros(3), np.full(3, 1e-6)
    for t in range(1, 4):
        g = np.array([0.5, -0.25, 1.0]) * t
        m = 0.9 * m + 0.1 * g
        v = v - 0.01 * np.sign(v - g * g) * g * g
        rate = 0.1 * np.sqrt(1 - 0.99 ** t) / (1 - 0.9 ** t)
        w = w - rate * m / (np.sqrt(v) + 1e-3)
    np.testing.assert_allclose(ours, w, rtol=1e-5)
    assert int(state[0]) == 3


def test_unsupported_settings_are_refused():
    import tensorflow as tf
    with pytest.raises(TypeError, match="weight_decay"):
        optimizers.from_keras(tf.keras.optimizers.Adam(0.1, weight_decay=0.01))
    with pytest.raises(TypeError, match="Unsupported optimizer RMSprop"):
        optimizers.from_keras(tf.keras.optimizers.RMSprop(0.1))
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        optimizers.Adagrad(-1.0)


def test_epsilon_is_dp_accountings():
    from dp_accounting import dp_event, rdp
    event = dp_event.SelfComposedDpEvent(
        dp_event.PoissonSampledDpEvent(20 / 1000, dp_event.GaussianDpEvent(1.1)), 300)
    accountant = rdp.RdpAccountant()
    accountant.compose(event)
    expected = accountant.get_epsilon(1e-5)
    assert privacy.compute_epsilon(1.1, 20, 1000, 300, 1e-5) == pytest.approx(expected,
                                                                              rel=1e-12)
    more = privacy.compute_epsilon(1.1, 20, 1000, 600, 1e-5)
    assert more > expected  # more rounds spend more budget
    assert privacy.compute_epsilon(0.0, 20, 1000, 1, 1e-5) == float("inf")
    assert privacy.compute_epsilon(1.0, 20, 1000, 0, 1e-5) == 0.0
    with pytest.raises(ValueError, match="clients_per_round <= total_clients"):
        privacy.compute_epsilon(1.0, 20, 10, 5, 1e-5)
