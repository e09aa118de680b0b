"""TFF's implicit forms of the intrinsics: `federated_map` over a struct of federated values
zips it first, and the sequence intrinsics work on federated sequences member by member."""

import numpy as np
import pytest
import tensorflow as tf

import fcore
from fcore import CLIENTS, SERVER, FederatedType, SequenceType


@fcore.tf_computation(np.float32, np.float32)
def is_over(reading, threshold):
    return tf.cast(reading > threshold, tf.float32)


@fcore.tf_computation(np.int32, np.int32)
def add(a, b):
    return a + b


@fcore.tf_computation(np.int32)
def double(x):
    return x * 2


@pytest.mark.parametrize("pack", [list, tuple])
def test_federated_map_zips_a_list_or_tuple_of_client_values(pack):
    @fcore.federated_computation(FederatedType(np.float32, CLIENTS),
                                 FederatedType(np.float32, SERVER))
    def fraction_over(readings, threshold):
        return fcore.federated_mean(fcore.federated_map(
            is_over, pack([readings, fcore.federated_broadcast(threshold)])))

    assert str(fraction_over.type_signature) == \
        "(<readings={float32}@CLIENTS,threshold=float32@SERVER> -> float32@SERVER)"
    assert "federated_zip_at_clients" in str(fraction_over)
    assert fraction_over([1.0, 5.0, 7.0], 4.0) == pytest.approx(2 / 3)


def test_federated_map_zips_server_values_with_federated_apply():
    @fcore.federated_computation(FederatedType(np.int32, SERVER), FederatedType(np.int32, SERVER))
    def total(a, b):
        return fcore.federated_map(add, (a, b))

    assert str(total.type_signature) == "(<a=int32@SERVER,b=int32@SERVER> -> int32@SERVER)"
    assert total(2, 3) == 5


def test_federated_map_of_values_at_two_placements_is_refused():
    with pytest.raises(TypeError, match="FederatedType"):
        @fcore.federated_computation(FederatedType(np.float32, CLIENTS),
                                     FederatedType(np.float32, SERVER))
        def mixed(readings, threshold):
            return fcore.federated_map(is_over, [readings, threshold])


def test_sequence_sum_of_client_sequences_sums_each_client():
    @fcore.federated_computation(FederatedType(SequenceType(np.int32), CLIENTS))
    def sums(sequences):
        return fcore.sequence_sum(sequences)

    assert str(sums.type_signature) == "({int32*}@CLIENTS -> {int32}@CLIENTS)"
    assert sums([[1, 2], [3, 4, 5], []]) == [3, 12, 0]


def test_sequence_sum_of_a_server_sequence():
    @fcore.federated_computation(FederatedType(SequenceType(np.int32), SERVER))
    def total(sequence):
        return fcore.sequence_sum(sequence)

    assert str(total.type_signature) == "(int32*@SERVER -> int32@SERVER)"
    assert total([1, 2, 3]) == 6


def test_sequence_map_and_reduce_of_client_sequences():
    @fcore.federated_computation(FederatedType(SequenceType(np.int32), CLIENTS), np.int32)
    def both(sequences, zero):
        return fcore.sequence_map(double, sequences), \
            fcore.sequence_reduce(sequences, zero, add)

    assert str(both.type_signature) == \
        "(<sequences={int32*}@CLIENTS,zero=int32> -> <{int32*}@CLIENTS,{int32}@CLIENTS>)"
    doubled, reduced = both([[1, 2], [3]], 10)
    assert doubled == [[2, 4], [6]] and reduced == [13, 13]


def test_sequence_sum_of_a_plain_tensor_is_still_refused():
    with pytest.raises(TypeError, match="expects a sequence"):
        @fcore.federated_computation(np.int32)
        def wrong(x):
            return fcore.sequence_sum(x)
