"""The tutorial's type signatures, character for character."""

import collections

import numpy as np

import fcore
import learning
from learning.mnist import create_compiled_keras_model  # the tutorial's model

SEED_INITIALIZE = (
    "( -> <model=<trainable=<dense/bias=float32[512],dense/kernel=float32[784,512],"
    "dense_1/bias=float32[10],dense_1/kernel=float32[512,10]>,non_trainable=<>>,"
    "optimizer_state=<int64>>@SERVER)")


SAMPLE_BATCH = collections.OrderedDict(x=np.zeros((100, 784), np.float32),
                                       y=np.zeros(100, np.int32))


def model_fn():
    return learning.from_compiled_keras_model(create_compiled_keras_model(), SAMPLE_BATCH)


def test_initialize_type_signature_is_the_seeds():
    process = learning.build_federated_averaging_process(model_fn)
    assert str(process.initialize.type_signature) == SEED_INITIALIZE


def test_signature_does_not_change_as_keras_counts_layer_names_up():
    for _ in range(3):
        model_fn()  # Keras now names the next layers dense_6, dense_7, ...
    process = learning.build_federated_averaging_process(model_fn)
    assert str(process.initialize.type_signature) == SEED_INITIALIZE


def test_next_type_signature():
    process = learning.build_federated_averaging_process(model_fn)
    state = SEED_INITIALIZE[len("( -> "):-len(")")]
    assert str(process.next.type_signature) == (
        f"(<{state},{{<x=float32[?,784],y=int32[?]>*}}@CLIENTS> -> "
        f"<{state},<sparse_categorical_accuracy=float32,loss=float32>@SERVER>)")


def test_next_prints_its_ir_and_parses_back():
    process = learning.build_federated_averaging_process(model_fn)
    text = str(process.next)
    assert "federated_broadcast" in text and "federated_weighted_mean" in text
    assert "@client_update" in text and "@server_update" in text
    assert fcore.parse_computation(text, process.next.leaves()) == process.next
    assert fcore.parse_computation(str(process.initialize),
                                   process.initialize.leaves()) == process.initialize


def test_evaluation_type_signature():
    evaluation = learning.build_federated_evaluation(model_fn)
    weights = SEED_INITIALIZE[len("( -> <model="):SEED_INITIALIZE.index(",optimizer_state")]
    assert str(evaluation.type_signature) == (
        f"(<server_model_weights={weights}@SERVER,"
        f"federated_dataset={{<x=float32[?,784],y=int32[?]>*}}@CLIENTS> -> "
        f"<sparse_categorical_accuracy=float32,loss=float32>@SERVER)")


def test_keras_federated_output_computation_has_a_type():
    from support import small_model_fn
    computation = small_model_fn().federated_output_computation
    assert str(computation.type_signature) == (
        "({<sparse_categorical_accuracy=float32,loss=float32,num_examples=float32>}@CLIENTS -> "
        "<sparse_categorical_accuracy=float32@SERVER,loss=float32@SERVER>)")
