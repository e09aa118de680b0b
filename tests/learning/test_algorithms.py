"""learning.algorithms: FedAvg (weighted, unweighted), FedProx, FedSGD and federated
evaluation as LearningProcesses, with aggregators, optimizers and schedules."""

import collections
import re

import numpy as np
import pytest

import fcore
import learning
from learning import algorithms
from support import assert_close, random_client_data, small_keras_model, small_model_fn

DATA = random_client_data(4, seed=3)


def model_fn():
    return small_model_fn(units=8)


def trainable(process, state):
    return [np.asarray(v) for v in process.get_model_weights(state).trainable]


def rounds(process, count=1, data=DATA, executor="reference", start=None):
    state = process.initialize()
    if start is not None:  # model weights to start from (each model_fn call draws new ones)
        state = process.set_model_weights(state, start)
    metrics = None
    with fcore.execution_context(executor):
        for _ in range(count):
            state, metrics = process.next(state, data)
    return state, metrics


def test_weighted_fed_avg_is_a_learning_process_with_tffs_signature():
    process = algorithms.build_weighted_fed_avg(model_fn)
    assert isinstance(process, learning.LearningProcess)
    assert isinstance(process, fcore.IterativeProcess)
    signature = process.next.type_signature
    assert signature.parameter.names() == ("state", "client_data")
    assert signature.result.names() == ("state", "metrics")
    state_type = signature.parameter[0].member
    assert state_type.names() == ("global_model_weights", "distributor", "client_work",
                                  "aggregator", "finalizer")
    output = process.next(process.initialize(), DATA)
    assert isinstance(output, learning.LearningProcessOutput)
    assert output.metrics.names() == ("distributor", "client_work", "aggregator", "finalizer")
    assert set(output.metrics.client_work.train.names()) == {"sparse_categorical_accuracy",
                                                             "loss"}
    assert int(output.metrics.finalizer.update_non_finite) == 0


def test_weighted_fed_avg_equals_the_seed_builder():
    new = algorithms.build_weighted_fed_avg(model_fn)
    old = learning.build_federated_averaging_process(model_fn)
    old_state = old.initialize()
    state = new.set_model_weights(new.initialize(), old_state.model)  # the same start
    for _ in range(2):
        old_state, _ = old.next(old_state, DATA)
        state, _ = new.next(state, DATA)
    for a, b in zip(trainable(new, state), old_state.model.trainable):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("build", [
    lambda: algorithms.build_weighted_fed_avg(
        model_fn, server_optimizer_fn=lambda: learning.optimizers.Adam(0.01),
        model_aggregator=learning.robust_aggregator()),
    lambda: algorithms.build_unweighted_fed_avg(
        model_fn, model_aggregator=learning.dp_aggregator(0.1, 4)),
    lambda: algorithms.build_weighted_fed_prox(model_fn, 0.5),
    lambda: algorithms.build_fed_sgd(model_fn),
])
def test_algorithms_agree_on_the_reference_and_fast_executors(build):
    process = build()
    reference_state, reference = rounds(process, 2)
    fast_state, fast = rounds(process, 2, executor="fast")
    for a, b in zip(trainable(process, reference_state), trainable(process, fast_state)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert str(reference) == str(fast)


def test_fed_prox_with_zero_strength_is_fed_avg():
    process = algorithms.build_weighted_fed_avg(
        model_fn, client_optimizer_fn=lambda: learning.optimizers.SGD(0.1))
    start = process.get_model_weights(process.initialize())
    avg_state, _ = rounds(process, 2, start=start)
    prox_state, _ = rounds(algorithms.build_weighted_fed_prox(model_fn, 0.0), 2, start=start)
    for a, b in zip(trainable(process, prox_state), trainable(process, avg_state)):
        np.testing.assert_array_equal(a, b)
    # the proximal term acts from a client's second step on (at the first, w = w0)
    data = [client * 3 for client in DATA]
    avg_state, _ = rounds(process, 2, start=start, data=data)
    strong, _ = rounds(algorithms.build_weighted_fed_prox(model_fn, 10.0), 2, start=start,
                       data=data)
    assert any(not np.allclose(a, b) for a, b in zip(trainable(process, strong),
                                                     trainable(process, avg_state)))
    with pytest.raises(ValueError, match="proximal_strength"):
        algorithms.build_weighted_fed_prox(model_fn, -1.0)


def test_fed_sgd_is_one_step_of_large_batch_sgd():
    import tensorflow as tf
    process = algorithms.build_fed_sgd(model_fn,
                                       server_optimizer_fn=lambda: learning.optimizers.SGD(0.5))
    initial = process.initialize()
    state, _ = process.next(initial, DATA)
    keras = small_keras_model(8)
    learning.assign_to_keras(process.get_model_weights(initial), keras)
    batches = [batch for client in DATA for batch in client]
    x = np.concatenate([b["x"] for b in batches])
    y = np.concatenate([b["y"] for b in batches])
    with tf.GradientTape() as tape:
        loss = tf.keras.losses.SparseCategoricalCrossentropy()(y, keras(x))
    gradients = tape.gradient(loss, keras.trainable_variables)
    expected = [v.numpy() - 0.5 * g.numpy() for v, g in zip(keras.trainable_variables,
                                                            gradients)]
    learning.assign_to_keras(process.get_model_weights(state), keras)
    for a, b in zip(keras.trainable_variables, expected):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-4, atol=1e-6)


def test_unweighted_and_weighted_fed_avg_differ_on_unequal_clients():
    data = [DATA[0] * 5, DATA[1]]  # one client with five times the data
    process = algorithms.build_unweighted_fed_avg(model_fn)
    start = process.get_model_weights(process.initialize())
    unweighted, _ = rounds(process, data=data, start=start)
    weighted, _ = rounds(algorithms.build_weighted_fed_avg(model_fn), data=data, start=start)
    assert any(not np.allclose(a, b) for a, b in zip(trainable(process, weighted),
                                                     trainable(process, unweighted)))
    with pytest.raises(TypeError, match="unweighted model_aggregator"):
        algorithms.build_unweighted_fed_avg(model_fn,
                                            model_aggregator=fcore.aggregators.MeanFactory())


def test_set_and_get_model_weights():
    process = algorithms.build_weighted_fed_avg(model_fn)
    trained, _ = rounds(process)
    fresh = process.initialize()
    moved = process.set_model_weights(fresh, process.get_model_weights(trained))
    for a, b in zip(trainable(process, moved), trainable(process, trained)):
        np.testing.assert_array_equal(a, b)
    assert str(moved.finalizer) == str(fresh.finalizer)


def test_fed_eval_evaluates_the_states_weights():
    train = algorithms.build_weighted_fed_avg(model_fn)
    trained, _ = rounds(train, 2)
    evaluation = algorithms.build_fed_eval(model_fn)
    state = evaluation.set_model_weights(evaluation.initialize(),
                                         train.get_model_weights(trained))
    same_state, metrics = evaluation.next(state, DATA)
    current = metrics.client_work.eval.current_round_metrics
    old = learning.build_federated_evaluation(model_fn)(train.get_model_weights(trained), DATA)
    np.testing.assert_allclose(float(current.loss), float(old.loss), rtol=1e-5)
    for a, b in zip(trainable(evaluation, same_state), trainable(train, trained)):
        np.testing.assert_array_equal(a, b)


def test_a_client_schedule_is_honoured_per_round():
    import tensorflow as tf

    def schedule(step):  # 0.1 in round 0, then nothing
        return tf.where(step < 1, 0.1, 0.0)

    process = algorithms.build_weighted_fed_avg(
        model_fn, client_optimizer_fn=lambda: learning.optimizers.SGD(schedule))
    assert "round_num" in process.initialize.type_signature.result.member.client_work.names()
    after_one, _ = rounds(process, 1)
    after_three, _ = rounds(process, 3)
    for a, b in zip(trainable(process, after_one), trainable(process, after_three)):
        np.testing.assert_array_equal(a, b)
    initial = trainable(process, process.initialize())
    assert any(not np.array_equal(a, b) for a, b in zip(initial,
                                                        trainable(process, after_one)))


def test_a_keras_schedule_on_the_server_is_honoured_per_round():
    import tensorflow as tf
    schedule = tf.keras.optimizers.schedules.PiecewiseConstantDecay([0], [1.0, 0.0])
    process = algorithms.build_weighted_fed_avg(
        model_fn, server_optimizer_fn=lambda: tf.keras.optimizers.SGD(schedule))
    after_one, _ = rounds(process, 1)
    after_two, _ = rounds(process, 2)
    for a, b in zip(trainable(process, after_one), trainable(process, after_two)):
        np.testing.assert_array_equal(a, b)


def test_the_seed_builder_refuses_a_client_schedule():
    import tensorflow as tf
    schedule = tf.keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    with pytest.raises(TypeError, match="schedule.*build_weighted_fed_avg"):
        learning.build_federated_averaging_process(
            model_fn, client_optimizer_fn=lambda: tf.keras.optimizers.SGD(schedule))


def test_a_non_finite_aggregate_leaves_the_model_unchanged():
    process = algorithms.build_weighted_fed_avg(model_fn)
    state = process.initialize()
    bad = [[collections.OrderedDict(x=np.full((2, 784), np.nan, np.float32),
                                    y=np.zeros(2, np.int32))]]
    new_state, metrics = process.next(state, bad)
    for a, b in zip(trainable(process, state), trainable(process, new_state)):
        np.testing.assert_array_equal(a, b)
    # the only client is rejected (weight 0): the mean is NaN, the update not applied
    assert int(metrics.finalizer.update_non_finite) == 1


def test_the_audit_of_dp_fed_avg_shows_noise_and_the_zeroing_count():
    def state_paths(zeroing):
        process = algorithms.build_unweighted_fed_avg(
            model_fn, model_aggregator=learning.dp_aggregator(0.5, 20, zeroing=zeroing))
        report = fcore.audit(process.next)
        assert report.ok
        return {p for d in report.client_dependencies if d.output == "state" for p in d.paths}

    noisy = {("federated_sum", "gaussian_noise"), ("federated_sum", "quantile_update")}
    assert state_paths(zeroing=False) == noisy
    # TFF's composition: the zeroing norm adapts to an exact (noise-free) count of clients
    assert state_paths(zeroing=True) == noisy | {("federated_sum",)}


def test_dp_fed_avg_and_robust_fed_avg_agree_on_dask():
    from support import local_cluster
    cluster = local_cluster()
    client = next(cluster)
    try:
        for process in (
                algorithms.build_unweighted_fed_avg(
                    model_fn, model_aggregator=learning.dp_aggregator(0.1, 4)),
                algorithms.build_weighted_fed_avg(
                    model_fn, model_aggregator=learning.robust_aggregator())):
            reference_state, reference = rounds(process, 2)
            state = process.initialize()
            with fcore.execution_context(dask=client):
                for _ in range(2):
                    state, metrics = process.next(state, DATA)
            for a, b in zip(trainable(process, reference_state), trainable(process, state)):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
            # the same metrics, to float tolerance (printed, they may differ in the 6th digit)
            assert_close(reference, metrics)
            numbers = re.compile(r"-?[0-9][0-9.e+-]*")
            assert numbers.sub("#", str(metrics)) == numbers.sub("#", str(reference))
    finally:
        next(cluster, None)
