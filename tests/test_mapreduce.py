"""MapReduce form: compiling a round into prepare / work / aggregation / update parts and
composing it back, with the same type signature and results (FedAvg, federated evaluation,
custom algorithms), and errors that name what does not fit."""

import collections

import numpy as np
import pytest
import tensorflow as tf

import fcore
import learning
from fcore import mapreduce

from support import assert_close, random_client_data, small_model_fn

od = collections.OrderedDict
STATE = fcore.FederatedType(fcore.TensorType(np.float32, [2]), fcore.SERVER)
DATA = fcore.FederatedType(fcore.SequenceType(fcore.TensorType(np.float32, [2])), fcore.CLIENTS)


def round_trip(comp, *args, kinds=("reference", "fast")):
    form = mapreduce.get_map_reduce_form_for_computation(comp)
    back = mapreduce.get_computation_for_map_reduce_form(form)
    assert back.type_signature == comp.type_signature
    for kind in kinds:
        with fcore.execution_context(kind):
            assert_close(comp(*args), back(*args))
    return form


def test_fedavg_round_trips():
    process = learning.build_federated_averaging_process(small_model_fn)
    form = round_trip(process.next, process.initialize(), random_client_data(5))
    text = str(form)
    for part in mapreduce.PARTS:
        assert f"\n{part}: " in text
    assert "@client_update" in str(form.work) and "@server_update" in str(form.update)
    assert not any(isinstance(t, fcore.FederatedType) for t in
                   [form.work.type_signature.parameter, form.work.type_signature.result])


def test_federated_evaluation_as_a_round():
    evaluate = learning.build_federated_evaluation(small_model_fn)
    process = learning.build_federated_averaging_process(small_model_fn)
    weights = process.initialize().model
    state_type = fcore.FederatedType(evaluate.type_signature.parameter[0].member, fcore.SERVER)
    data_type = evaluate.type_signature.parameter[1]

    @fcore.federated_computation(state_type, data_type)
    def evaluation_round(model, data):
        return model, evaluate(model, data)
    round_trip(evaluation_round, weights, random_client_data(4))


@fcore.tf_computation(fcore.SequenceType(fcore.TensorType(np.float32, [2])),
                      fcore.TensorType(np.float32, [2]))
def local_step(dataset, weights):
    return dataset.reduce(tf.zeros([2]), lambda acc, x: acc + (x - weights))


@fcore.tf_computation(fcore.TensorType(np.float32, [2]), np.float32)
def clip(delta, norm):
    return tf.clip_by_norm(delta, norm)


@fcore.tf_computation(fcore.SequenceType(fcore.TensorType(np.float32, [2])))
def count(dataset):
    return tf.cast(dataset.reduce(0, lambda n, _: n + 1), tf.float32)


def test_a_custom_algorithm_with_several_leaves_and_aggregations():
    plus = fcore.tf_computation(lambda a, b: a + b, np.int32, np.int32)
    identity = fcore.tf_computation(lambda a: a, np.int32)
    apply = fcore.tf_computation(lambda s, d: s + 0.5 * d, fcore.TensorType(np.float32, [2]),
                                 fcore.TensorType(np.float32, [2]))

    @fcore.federated_computation(STATE, DATA)
    def custom_round(state, data):
        weights = fcore.federated_broadcast(state)
        norm = fcore.federated_broadcast(fcore.federated_value(1.5, fcore.SERVER))
        delta = fcore.federated_map(local_step, (data, weights))
        clipped = fcore.federated_map(clip, (delta, norm))
        sizes = fcore.federated_map(count, data)
        mean = fcore.federated_mean(clipped, sizes)
        largest = fcore.federated_max(sizes)
        ones = fcore.federated_map(fcore.tf_computation(lambda n: tf.cast(n, tf.int32),
                                                        np.float32), sizes)
        clients = fcore.federated_aggregate(ones, 0, plus, plus, identity)
        secure = fcore.federated_secure_sum(ones, 100)
        new_state = fcore.federated_map(apply, (state, mean))
        return new_state, fcore.federated_zip(od(largest=largest, clients=clients,
                                                 secure=secure, total=fcore.federated_sum(sizes)))
    rng = np.random.default_rng(0)
    data = [[rng.normal(size=2).astype(np.float32) for _ in range(n)] for n in (1, 3, 2)]
    form = round_trip(custom_round, np.zeros(2, np.float32), data)
    assert len(form.secure_sum_max_input.type_signature.result) == 1
    assert "@local_step" in str(form.work) and "@clip" in str(form.work)


def test_sequence_reduce_and_lambdas_in_the_client_work():
    add = fcore.tf_computation(lambda a, b: a + b, np.float32, np.float32)

    @fcore.federated_computation(fcore.FederatedType(np.float32, fcore.SERVER),
                                 fcore.FederatedType(fcore.SequenceType(np.float32),
                                                     fcore.CLIENTS))
    def reduce_round(state, data):
        offset = fcore.federated_broadcast(state)

        @fcore.federated_computation(fcore.SequenceType(np.float32), np.float32)
        def local(values, shift):
            return fcore.sequence_reduce(values, 0.0, add)
        totals = fcore.federated_map(local, (data, offset))
        return state, fcore.federated_sum(totals)
    round_trip(reduce_round, np.float32(1.0), [[1.0, 2.0], [3.0]])


def test_a_value_computed_from_client_values_without_aggregation_does_not_fit():
    @fcore.federated_computation(STATE, DATA)
    def returns_clients(state, data):
        return state, fcore.federated_map(count, data)
    with pytest.raises(ValueError, match="client-placed"):
        mapreduce.get_map_reduce_form_for_computation(returns_clients)


def test_two_rounds_in_one_call_do_not_fit():
    @fcore.federated_computation(STATE, DATA)
    def two_rounds(state, data):
        first = fcore.federated_mean(fcore.federated_map(local_step, (
            data, fcore.federated_broadcast(state))))
        second = fcore.federated_mean(fcore.federated_map(local_step, (
            data, fcore.federated_broadcast(first))))
        return state, second
    with pytest.raises(ValueError, match="a broadcast of a value computed after the "
                                         "aggregation .*two_rounds|second round"):
        mapreduce.get_map_reduce_form_for_computation(two_rounds)


def test_a_parameter_of_another_shape_does_not_fit():
    f = fcore.federated_computation(lambda x: fcore.federated_sum(x),
                                    fcore.FederatedType(np.int32, fcore.CLIENTS))
    with pytest.raises(ValueError, match=r"expected a parameter <S@SERVER,\{D\}@CLIENTS>"):
        mapreduce.get_map_reduce_form_for_computation(f)
