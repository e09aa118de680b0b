"""The standard federated learning algorithms as `LearningProcess`es, named as in TFF's
`tff.learning.algorithms`:

- `build_weighted_fed_avg` / `build_unweighted_fed_avg`: FedAvg (McMahan et al. 2017); with a
  server optimizer with momentum, Adam, Yogi or Adagrad it is FedAvgM / FedAdam / FedYogi /
  FedAdagrad (Reddi et al. 2021);
- `build_weighted_fed_prox`: FedProx (Li et al. 2020), FedAvg with a proximal term;
- `build_fed_sgd`: FedSGD, one gradient per client at the server's weights;
- `build_fed_eval`: federated evaluation of the state's model.

A process's state is `<global_model_weights=<trainable=...,non_trainable=...>,distributor=<>,
client_work=...,aggregator=A,finalizer=F>` (the aggregator's state, the server optimizer's
state) and `next` is

    (<state=S@SERVER,client_data={B*}@CLIENTS> -> <state=S@SERVER,metrics=M@SERVER>)

with metrics `<distributor=<>,client_work=<train=(the model's metrics)>,aggregator=(the
aggregator's measurements),finalizer=<update_non_finite=int32>>`. `model_aggregator` takes any
`fcore.aggregators` factory (default: `MeanFactory()` weighted by the clients' numbers of
examples, `UnweightedMeanFactory()` unweighted). A client whose update is not finite, or that
has no data, sends zeros with weight zero; an aggregate that is not finite leaves the model
unchanged (`update_non_finite` = 1)."""

from __future__ import annotations

import collections

import fcore
from fcore import aggregators
from learning import optimizers, training
from learning.evaluation import evaluation_leaf
from learning.fedavg import _placed_at_server, as_model
from learning.models import TrainableModel
from learning.weights import ModelWeights, pack

LearningProcessOutput = collections.namedtuple("LearningProcessOutput", ["state", "metrics"])
LearningProcessOutput.__doc__ = "What a `LearningProcess`'s `next` returns."


class LearningProcess(fcore.IterativeProcess):
    """An `fcore.IterativeProcess` whose state holds a model: `initialize()`,
    `next(state, client_data)` -> `LearningProcessOutput(state, metrics)`,
    `get_model_weights(state)` and `set_model_weights(state, weights)` (fcore computations on
    the unplaced state)."""

    def __init__(self, initialize, next, get_model_weights, set_model_weights):  # noqa: A002
        super().__init__(initialize, next)
        result = next.type_signature.result
        if not isinstance(result, fcore.StructType) or \
                tuple(result.names()) != LearningProcessOutput._fields:
            raise TypeError(f"LearningProcess: next must return <state=...,metrics=...>, found "
                            f"{result}.")
        self.get_model_weights = get_model_weights
        self.set_model_weights = set_model_weights

    def __repr__(self):
        return (f"LearningProcess(initialize: {self.initialize.type_signature}, "
                f"next: {self.next.type_signature})")


def build_weighted_fed_avg(model_fn, client_optimizer_fn=None, server_optimizer_fn=None,
                           model_aggregator=None):
    """FedAvg, each client's update weighted by its number of examples (unless
    `model_aggregator` is an unweighted factory). Client training uses
    `client_optimizer_fn()` (default: the model's own `train_on_batch`, a compiled Keras
    model's optimizer, else SGD(0.1)); the server applies the aggregated update with
    `server_optimizer_fn()` (default SGD(1.0): adopt the average)."""
    return _model_delta_process(model_fn, client_optimizer_fn, server_optimizer_fn,
                                model_aggregator, weighted=True, proximal_strength=0.0,
                                what="build_weighted_fed_avg")


def build_unweighted_fed_avg(model_fn, client_optimizer_fn=None, server_optimizer_fn=None,
                             model_aggregator=None):
    """FedAvg with every client's update counted once (default aggregator
    `UnweightedMeanFactory()`); `model_aggregator` must be unweighted (DP aggregators are)."""
    return _model_delta_process(model_fn, client_optimizer_fn, server_optimizer_fn,
                                model_aggregator, weighted=False, proximal_strength=0.0,
                                what="build_unweighted_fed_avg")


def build_weighted_fed_prox(model_fn, proximal_strength, client_optimizer_fn=None,
                            server_optimizer_fn=None, model_aggregator=None):
    """FedProx: FedAvg whose clients minimise `loss + proximal_strength/2 * ||w - w0||^2`, w0
    the broadcast weights. `proximal_strength=0` is FedAvg exactly."""
    try:
        strength = float(proximal_strength)
    except (TypeError, ValueError):
        strength = float("nan")
    if not strength >= 0 or strength == float("inf"):
        raise ValueError(f"build_weighted_fed_prox: proximal_strength must be a finite number "
                         f">= 0, found {proximal_strength!r}.")
    return _model_delta_process(model_fn, client_optimizer_fn, server_optimizer_fn,
                                model_aggregator, weighted=True, proximal_strength=strength,
                                what="build_weighted_fed_prox")


def build_fed_sgd(model_fn, server_optimizer_fn=None, model_aggregator=None):
    """FedSGD: each client computes the mean gradient of the loss over all its examples at the
    broadcast weights; the gradients are averaged weighted by examples (the gradient of one
    large batch of all the clients' data) and the server takes one step of
    `server_optimizer_fn()` (default SGD(0.1))."""
    return _model_delta_process(model_fn, None, server_optimizer_fn, model_aggregator,
                                weighted=True, proximal_strength=0.0, what="build_fed_sgd",
                                gradient_only=True)


def build_fed_eval(model_fn):
    """Federated evaluation as a `LearningProcess`: the state holds the model weights (set them
    with `set_model_weights`); `next(state, client_data)` evaluates them on every client and
    returns the state unchanged with metrics
    `<distributor=<>,client_work=<eval=<current_round_metrics=M>>,aggregator=<>,
    finalizer=<>>`."""
    import tensorflow as tf
    model = as_model(model_fn())
    weights = ModelWeights(model)
    data_type = fcore.SequenceType(fcore.to_type(model.input_spec))
    trainable, non_trainable = weights.snapshot()
    empty = fcore.Struct([])

    @fcore.tf_computation
    def server_init():
        return _state(weights.as_struct([tf.constant(t) for t in trainable],
                                        [tf.constant(t) for t in non_trainable]),
                      empty, empty, empty)

    client_eval = evaluation_leaf(model, weights, data_type)
    initialize, state_type, parameter = _initialize(server_init, data_type)

    @fcore.federated_computation(parameter)
    def next_fn(state, client_data):
        client_model = fcore.federated_broadcast(state.global_model_weights)
        outputs = fcore.federated_map(client_eval, fcore.federated_zip((client_model,
                                                                        client_data)))
        metrics = _placed_at_server(model.federated_output_computation(outputs))
        nothing = fcore.federated_value(empty, fcore.SERVER)
        return LearningProcessOutput(state, aggregators.core.server_struct(
            distributor=nothing,
            client_work=fcore.federated_zip(fcore.Struct([("eval", fcore.federated_zip(
                fcore.Struct([("current_round_metrics", metrics)])))])),
            aggregator=nothing, finalizer=nothing))

    return LearningProcess(initialize, next_fn, *_weights_accessors(state_type, weights))


# The shared builder ---------------------------------------------------------------------------

def _state(model_weights, client_work, aggregator, finalizer):
    return fcore.Struct([("global_model_weights", model_weights),
                         ("distributor", fcore.Struct([])), ("client_work", client_work),
                         ("aggregator", aggregator), ("finalizer", finalizer)])


def _initialize(server_init, data_type):
    @fcore.federated_computation
    def initialize():
        return fcore.federated_eval(server_init, fcore.SERVER)

    state_type = initialize.type_signature.result.member
    return initialize, state_type, _next_parameter(state_type, data_type)


def _next_parameter(state_type, data_type):
    """`<state=S@SERVER,client_data={B*}@CLIENTS>`, the parameter of `next`."""
    return fcore.StructType([("state", fcore.FederatedType(state_type, fcore.SERVER)),
                             ("client_data", fcore.FederatedType(data_type, fcore.CLIENTS))])


def _weights_accessors(state_type, weights):
    @fcore.tf_computation(state_type)
    def get_model_weights(state):
        return state.global_model_weights

    @fcore.tf_computation(state_type, weights.type_signature)
    def set_model_weights(state, model_weights):
        return fcore.Struct([(name, model_weights if name == "global_model_weights" else value)
                             for name, value in state.items()])

    return get_model_weights, set_model_weights


def _aggregator(model_aggregator, weighted, what):
    if model_aggregator is None:
        return aggregators.MeanFactory() if weighted else aggregators.UnweightedMeanFactory()
    aggregators.core.check_factory(model_aggregator, f"{what}: model_aggregator")
    if not weighted and aggregators.core.is_weighted(model_aggregator):
        raise TypeError(f"{what}: expected an unweighted model_aggregator (every client "
                        f"counts once), found the weighted {model_aggregator!r}; use "
                        f"build_weighted_fed_avg, or an unweighted factory.")
    return model_aggregator


def _model_delta_process(model_fn, client_optimizer_fn, server_optimizer_fn, model_aggregator,
                         weighted, proximal_strength, what, gradient_only=False):
    import tensorflow as tf
    model = as_model(model_fn())
    weights = ModelWeights(model)
    use_model_step = (client_optimizer_fn is None and isinstance(model, TrainableModel)
                      and not proximal_strength and not gradient_only)
    default_client = getattr(model, "optimizer", None)
    client_optimizer = optimizers.build(
        client_optimizer_fn, optimizers.from_keras(default_client)
        if default_client is not None else optimizers.SGD(0.1))
    server_optimizer = optimizers.build(
        server_optimizer_fn, optimizers.SGD(0.1 if gradient_only else 1.0))
    scheduled = client_optimizer.has_schedule and not gradient_only and not use_model_step
    factory = _aggregator(model_aggregator, weighted, what)
    uses_weights = aggregators.core.is_weighted(factory)
    aggregation = aggregators.core.create(factory, weights.trainable_type,
                                          fcore.TensorType(tf.float32) if uses_weights
                                          else None)
    data_type = fcore.SequenceType(fcore.to_type(model.input_spec))
    trainable, non_trainable = weights.snapshot()
    aggregator_init = aggregation.initialize

    @fcore.tf_computation
    def server_init():
        model_weights = weights.as_struct([tf.constant(t) for t in trainable],
                                          [tf.constant(t) for t in non_trainable])
        client_work = fcore.Struct([("round_num", tf.constant(0, tf.int64))]) if scheduled \
            else fcore.Struct([])
        return _state(model_weights, client_work, fcore.Struct([]),
                      server_optimizer.initialize(trainable))

    base_type = server_init.type_signature.result
    aggregator_type = aggregator_init.type_signature.result.member

    @fcore.tf_computation(base_type, aggregator_type)
    def _with_aggregator_state(base, aggregator_state):
        return fcore.Struct([(name, aggregator_state if name == "aggregator" else value)
                             for name, value in base.items()])

    # The aggregator's initial state comes from its own `initialize`.
    @fcore.federated_computation
    def initialize():
        base = fcore.federated_eval(server_init, fcore.SERVER)
        return fcore.federated_map(_with_aggregator_state, fcore.federated_zip(
            (base, aggregator_init())))

    state_type = initialize.type_signature.result.member
    parameter = _next_parameter(state_type, data_type)

    def client_work(model_weights, dataset, round_num=None):
        weights.assign(model_weights)
        training.reset_local_variables(model)
        variables = [training.tf_variable(v) for v in weights.trainable_variables()]
        if gradient_only:
            gradients, count = training.gradient(model, dataset, variables)
            update, keep, _ = training.client_delta([-g for g in gradients],
                                                    [tf.zeros_like(g) for g in gradients], count)
        else:
            initial = list(model_weights[0])  # what the trainable variables now hold
            rate = client_optimizer.rate(round_num) if round_num is not None else None
            count = training.train(model, dataset, client_optimizer, use_model_step, rate,
                                   proximal_strength)
            update, keep, _ = training.client_delta([v.read_value() for v in variables],
                                                    initial, count)
        outputs = training.zero_weight_outputs(model.report_local_outputs(), keep)
        return fcore.Struct([("update", pack(weights.trainable, update)),
                             ("weight", tf.where(keep, count, 0.0)),
                             ("model_output", outputs)])

    if scheduled:
        @fcore.tf_computation(weights.type_signature, data_type, tf.int64)
        def client_update(model_weights, dataset, round_num):
            return client_work(model_weights, dataset, round_num)
    else:
        @fcore.tf_computation(weights.type_signature, data_type)
        def client_update(model_weights, dataset):
            return client_work(model_weights, dataset)

    finalizer_type = state_type.finalizer

    @fcore.tf_computation(weights.type_signature, finalizer_type, weights.trainable_type)
    def apply_update(model_weights, optimizer_state, update):
        current = list(model_weights.trainable)
        update = list(update)
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(u)) for u in update])
        safe = [tf.where(finite, u, tf.zeros_like(u)) for u in update]
        new_state, new = server_optimizer.apply(optimizer_state, current, [-u for u in safe])
        chosen = [tf.where(finite, n, c) for n, c in zip(new, current)]
        kept_state = tf.nest.map_structure(lambda n, o: tf.where(finite, n, o),
                                           tuple(new_state), tuple(optimizer_state))
        return fcore.Struct([
            ("global_model_weights", fcore.Struct([
                ("trainable", pack(weights.trainable, chosen)),
                ("non_trainable", model_weights.non_trainable)])),
            ("finalizer", kept_state),
            ("update_non_finite", tf.cast(tf.logical_not(finite), tf.int32))])

    @fcore.tf_computation(state_type.client_work)
    def next_client_work(client_work_state):
        if scheduled:
            return fcore.Struct([("round_num", client_work_state.round_num + 1)])
        return client_work_state

    @fcore.federated_computation(parameter)
    def next_fn(state, client_data):
        client_model = fcore.federated_broadcast(state.global_model_weights)
        arguments = [client_model, client_data]
        if scheduled:
            arguments.append(fcore.federated_broadcast(state.client_work.round_num))
        outputs = fcore.federated_map(client_update, fcore.federated_zip(tuple(arguments)))
        if uses_weights:
            aggregated = aggregation.next(state.aggregator, outputs.update, outputs.weight)
        else:
            aggregated = aggregation.next(state.aggregator, outputs.update)
        finalized = fcore.federated_map(apply_update, fcore.federated_zip(
            (state.global_model_weights, state.finalizer, aggregated.result)))
        new_state = aggregators.core.server_struct(
            global_model_weights=finalized.global_model_weights,
            distributor=state.distributor,
            client_work=fcore.federated_map(next_client_work, state.client_work),
            aggregator=aggregated.state, finalizer=finalized.finalizer)
        train = _placed_at_server(model.federated_output_computation(outputs.model_output))
        metrics = aggregators.core.server_struct(
            distributor=fcore.federated_value(fcore.Struct([]), fcore.SERVER),
            client_work=fcore.federated_zip(fcore.Struct([("train", train)])),
            aggregator=aggregated.measurements,
            finalizer=fcore.federated_zip(fcore.Struct([("update_non_finite",
                                                         finalized.update_non_finite)])))
        return LearningProcessOutput(new_state, metrics)

    return LearningProcess(initialize, next_fn, *_weights_accessors(state_type, weights))
