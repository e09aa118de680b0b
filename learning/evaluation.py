"""Federated evaluation: the model's metrics over the clients' data, without training.

    (<server_model_weights=<trainable=...,non_trainable=...>@SERVER,
      federated_dataset={B*}@CLIENTS> -> M@SERVER)"""

from __future__ import annotations

import fcore
from learning import training
from learning.fedavg import _placed_at_server, as_model
from learning.weights import ModelWeights


def build_federated_evaluation(model_fn):
    """A computation from server model weights (`state.model` of federated averaging) and
    client data to the metrics of the model's `federated_output_computation`."""
    model = as_model(model_fn())
    weights = ModelWeights(model)
    data_type = fcore.SequenceType(fcore.to_type(model.input_spec))
    client_eval = evaluation_leaf(model, weights, data_type)

    parameter = fcore.StructType([
        ("server_model_weights", fcore.FederatedType(weights.type_signature, fcore.SERVER)),
        ("federated_dataset", fcore.FederatedType(data_type, fcore.CLIENTS))])

    @fcore.federated_computation(parameter)
    def federated_evaluation(server_model_weights, federated_dataset):
        client_model = fcore.federated_broadcast(server_model_weights)
        outputs = fcore.federated_map(client_eval,
                                      fcore.federated_zip((client_model, federated_dataset)))
        return _placed_at_server(model.federated_output_computation(outputs))

    return federated_evaluation


def evaluation_leaf(model, weights, data_type):
    """The client's evaluation: `(model weights, dataset) -> report_local_outputs()`."""
    @fcore.tf_computation(weights.type_signature, data_type)
    def client_eval(model_weights, dataset):
        weights.assign(model_weights)
        training.reset_local_variables(model)
        training.evaluate(model, dataset)
        return model.report_local_outputs()
    return client_eval
