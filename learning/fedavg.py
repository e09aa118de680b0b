"""Federated averaging (McMahan et al.), compiled to fcore computations.

`next` broadcasts the server model, trains it on each client's data (a TF computation per
client), averages the clients' weight changes weighted by their numbers of examples, applies
them with the server optimizer, and aggregates the clients' metrics with the model's
`federated_output_computation`:

    (<S@SERVER,{B*}@CLIENTS> -> <S@SERVER,M@SERVER>)

A client with no data, or whose update is not finite, gets weight zero and is left out of the
means; `next.last_report` says how many there were, and a warning is issued. If no client
remains, the state is unchanged."""

from __future__ import annotations

import dataclasses
import threading
import warnings

import fcore
from learning import optimizers, training
from learning.models import Model, TrainableModel
from learning.weights import ModelWeights, pack


@dataclasses.dataclass(frozen=True)
class RoundReport:
    """What happened to the clients of one round."""
    clients: int
    empty: int
    non_finite: int

    FIELDS = ("clients", "empty", "non_finite")

    @property
    def skipped(self):
        return self.empty + self.non_finite


class FederatedAveragingNext(fcore.Computation):
    """The `next` computation of federated averaging; after each call `last_report` holds a
    `RoundReport` of the clients whose work was aggregated and of those left out.

    The report is aggregated like the metrics (a `federated_sum` over the clients), by a
    twin computation that also returns it, so it is right on every executor, a Dask cluster
    included; a call inside another computation uses `next` itself."""

    def __init__(self, computation, with_report):
        super().__init__(computation.ir, computation.name, computation.type_signature.result)
        self._with_report = with_report
        with_report.shown_as = self  # argument errors name `next` and show its signature
        self._reports = threading.local()

    @property
    def last_report(self):
        """The `RoundReport` of this thread's last call (None before the first)."""
        return getattr(self._reports, "value", None)

    def __call__(self, *args, **kwargs):
        if fcore.context_stack.current().is_tracing:
            return super().__call__(*args, **kwargs)
        state, metrics, report = self._with_report(*args, **kwargs)
        clients, empty, non_finite = (int(report[name]) for name in RoundReport.FIELDS)
        self._reports.value = RoundReport(clients, empty, non_finite)
        if clients == 0:
            warnings.warn("federated averaging: a round with no clients; the state is "
                          "unchanged and the metrics are undefined (NaN).", RuntimeWarning,
                          stacklevel=2)
        elif empty or non_finite:
            warnings.warn(f"federated averaging: {empty + non_finite} of {clients} clients left "
                          f"out of this round ({empty} with no data, {non_finite} with a "
                          f"non-finite update).", RuntimeWarning, stacklevel=2)
        return state, metrics


def as_model(model):
    if not isinstance(model, Model):
        raise TypeError(f"model_fn must return a learning.Model (wrap Keras models with "
                        f"learning.from_keras_model), found {type(model).__name__}.")
    return model


def build_federated_averaging_process(model_fn, client_optimizer_fn=None,
                                      server_optimizer_fn=None, average_non_trainable=False):
    """Federated averaging as an `fcore.IterativeProcess` of `initialize` and `next`.

    `model_fn` builds a `learning.Model` (call it, do not pass a model). Client training uses
    `client_optimizer_fn()` if given, else the model's own `train_on_batch` (a
    `TrainableModel`), else a compiled Keras model's optimizer, else SGD(0.1). The server
    applies the averaged change with `server_optimizer_fn()` (default SGD(1.0), which adopts
    the average). Optimizers may be `tf.keras.optimizers.SGD`/`Adam` or `learning.optimizers`.

    Non-trainable weights (BatchNormalization's moving statistics, say) stay at their server
    values, as in TFF, with a warning when the model has any; `average_non_trainable=True`
    sets them each round to the clients' values after training, averaged with the same
    weights as the model update.
    """
    import tensorflow as tf
    model = as_model(model_fn())
    weights = ModelWeights(model)
    if weights.non_trainable and not average_non_trainable:
        warnings.warn(f"federated averaging: the model has {len(weights.non_trainable)} "
                      f"non-trainable weights ({weights.non_trainable[0][0]}, ...); they keep "
                      f"their server values, as in TFF. Pass average_non_trainable=True to "
                      f"average the clients' values instead.", UserWarning, stacklevel=2)
    use_model_step = client_optimizer_fn is None and isinstance(model, TrainableModel)
    default_client = getattr(model, "optimizer", None)
    client_optimizer = optimizers.build(
        client_optimizer_fn,
        optimizers.from_keras(default_client) if default_client is not None else
        optimizers.SGD(0.1))
    if client_optimizer.has_schedule and not use_model_step:
        raise TypeError("build_federated_averaging_process: the client optimizer has a "
                        "learning-rate schedule, which this builder cannot honour per round; "
                        "use learning.algorithms.build_weighted_fed_avg, which evaluates it at "
                        "each round's number.")
    server_optimizer = optimizers.build(server_optimizer_fn, optimizers.SGD(1.0))
    batch_type = fcore.to_type(model.input_spec)
    data_type = fcore.SequenceType(batch_type)
    trainable, non_trainable = weights.snapshot()

    @fcore.tf_computation
    def server_init():
        model_weights = weights.as_struct([tf.constant(t) for t in trainable],
                                          [tf.constant(t) for t in non_trainable])
        return fcore.Struct([("model", model_weights),
                             ("optimizer_state", server_optimizer.initialize(trainable))])

    state_type = server_init.type_signature.result

    @fcore.federated_computation
    def initialize():
        return fcore.federated_eval(server_init, fcore.SERVER)

    @fcore.tf_computation(weights.type_signature, data_type)
    def client_update(model_weights, dataset):
        weights.assign(model_weights)
        training.reset_local_variables(model)
        initial = list(model_weights[0])  # what the trainable variables now hold: no copy
        count = training.train(model, dataset, client_optimizer, use_model_step)
        trained = [training.tf_variable(v).read_value() for v in weights.trainable_variables()]
        delta, keep, finite = training.client_delta(trained, initial, count)
        outputs = training.zero_weight_outputs(model.report_local_outputs(), keep)
        extra = [("non_trainable", pack(weights.non_trainable, [
            training.tf_variable(v).read_value() for v in weights.non_trainable_variables()]))] \
            if average_non_trainable else []
        return fcore.Struct(extra + [("weights_delta", pack(weights.trainable, delta)),
                             ("client_weight", tf.where(keep, count, 0.0)),
                             ("model_output", outputs),
                             ("round_report", fcore.Struct([
                                 ("clients", tf.constant(1, tf.int64)),
                                 ("empty", tf.cast(count <= 0, tf.int64)),
                                 ("non_finite", tf.cast(tf.logical_and(
                                     count > 0, tf.logical_not(finite)), tf.int64))]))])

    def server_update_fn(state, weights_delta, non_trainable=None):
        current = list(state.model.trainable)
        delta = list(weights_delta)
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(d)) for d in delta])
        safe = [tf.where(finite, d, tf.zeros_like(d)) for d in delta]
        optimizer_state, new = server_optimizer.apply(state.optimizer_state, current,
                                                      [-d for d in safe])
        chosen = [tf.where(finite, n, c) for n, c in zip(new, current)]
        kept_state = tf.nest.map_structure(lambda n, o: tf.where(finite, n, o),
                                           tuple(optimizer_state), tuple(state.optimizer_state))
        kept = state.model.non_trainable
        if non_trainable is not None:  # the clients' mean, unless no client contributed
            values = list(non_trainable)
            defined = tf.reduce_all([tf.reduce_all(tf.math.is_finite(tf.cast(v, tf.float64)))
                                     for v in values]) if values else tf.constant(True)
            kept = pack(weights.non_trainable, [tf.where(defined, v, o) for v, o in
                                                zip(values, state.model.non_trainable)])
        model_weights = fcore.Struct([("trainable", pack(weights.trainable, chosen)),
                                      ("non_trainable", kept)])
        return fcore.Struct([("model", model_weights), ("optimizer_state", kept_state)])

    if average_non_trainable:
        @fcore.tf_computation(state_type, weights.trainable_type, weights.non_trainable_type)
        def server_update(state, weights_delta, non_trainable):
            return server_update_fn(state, weights_delta, non_trainable)
    else:
        @fcore.tf_computation(state_type, weights.trainable_type)
        def server_update(state, weights_delta):
            return server_update_fn(state, weights_delta)

    parameter = fcore.StructType([fcore.FederatedType(state_type, fcore.SERVER),
                                  fcore.FederatedType(data_type, fcore.CLIENTS)])

    def round_of(server_state, federated_dataset, with_report):
        client_model = fcore.federated_broadcast(server_state.model)
        client_outputs = fcore.federated_map(
            client_update, fcore.federated_zip((client_model, federated_dataset)))
        delta = fcore.federated_mean(client_outputs.weights_delta, client_outputs.client_weight)
        update = [server_state, delta]
        if average_non_trainable:
            update.append(fcore.federated_mean(client_outputs.non_trainable,
                                               client_outputs.client_weight))
        new_state = fcore.federated_map(server_update, fcore.federated_zip(tuple(update)))
        metrics = _placed_at_server(
            model.federated_output_computation(client_outputs.model_output))
        if with_report:
            return new_state, metrics, fcore.federated_sum(client_outputs.round_report)
        return new_state, metrics

    @fcore.federated_computation(parameter)
    def next_round(server_state, federated_dataset):
        return round_of(server_state, federated_dataset, with_report=False)

    @fcore.federated_computation(parameter)
    def next_round_with_report(server_state, federated_dataset):
        return round_of(server_state, federated_dataset, with_report=True)
    next_round_with_report.name = next_round.name  # errors name what the user called

    return fcore.IterativeProcess(initialize,
                                  FederatedAveragingNext(next_round, next_round_with_report))


def _placed_at_server(metrics):
    """Metrics as one server value: a struct of server values is zipped."""
    if isinstance(metrics.type_signature, fcore.FederatedType):
        return metrics
    return fcore.federated_zip(metrics)
