"""The privacy audit: which client inputs reach each output, through which aggregations."""

import collections

import numpy as np
import pytest

import fcore
from fcore.audit import AGGREGATIONS, AuditReport, mark_noise
from fcore.ir import nodes

tf = pytest.importorskip("tensorflow")

F32 = np.float32
CLIENT_F32 = fcore.FederatedType(F32, fcore.CLIENTS)
SERVER_F32 = fcore.FederatedType(F32, fcore.SERVER)
CLIENT_I32 = fcore.FederatedType(np.int32, fcore.CLIENTS)


# Leaves shared by the programs below -----------------------------------------------------

@fcore.tf_computation(F32, F32)
def local_step(model, data):
    return model - 0.1 * data


@fcore.tf_computation(F32, F32)
def server_step(model, average):
    return 0.5 * model + 0.5 * average


@fcore.tf_computation(F32, F32)
def loss_fn(model, data):
    return (model - data) ** 2


@fcore.tf_computation(F32)
def gaussian_noise(total):
    return total + tf.random.stateless_normal([], seed=[1, 2])


mark_noise(gaussian_noise)


@fcore.tf_computation(F32)
def plain_noise(total):  # not marked: a leaf like any other unless named in audit(noise=)
    return total + 1.0


def fedavg_round():
    @fcore.federated_computation(SERVER_F32, CLIENT_F32)
    def round_(state, client_data):
        model = fcore.federated_broadcast(state)
        updates = fcore.federated_map(local_step, fcore.federated_zip((model, client_data)))
        average = fcore.federated_mean(updates)
        new_state = fcore.federated_map(server_step, fcore.federated_zip((state, average)))
        losses = fcore.federated_map(loss_fn, fcore.federated_zip((model, client_data)))
        metrics = collections.OrderedDict(loss=fcore.federated_sum(losses))
        return collections.OrderedDict(state=new_state, metrics=metrics)
    return round_


# FedAvg-like rounds -------------------------------------------------------------------------

def test_a_fedavg_round_lists_the_client_data_under_the_mean_and_the_sum():
    report = fcore.audit(fedavg_round())
    assert isinstance(report, AuditReport)
    assert [p.path for p in report.outputs] == ["state", "metrics.loss"]
    assert report.client_inputs == ["client_data"]
    assert report.paths("state", "client_data") == (("federated_mean",),)
    assert report.paths("metrics.loss", "client_data") == (("federated_sum",),)
    # the server state reaches the new state directly and through the clients' work
    assert report.paths("state", "state") == ((), ("federated_mean",))
    assert report.inputs_of("metrics.loss") == ["state", "client_data"]
    assert report.inputs_of("metrics.loss", "CLIENTS") == ["client_data"]
    assert report.ok and report.flagged == [] and report.client_outputs == []
    text = str(report)
    assert "state         client_data   federated_mean" in text
    assert "metrics.loss  client_data   federated_sum" in text
    assert "server and unplaced inputs:" in text and text.endswith("flagged: none")


def test_the_report_prints_a_fixed_width_table():
    lines = str(fcore.audit(fedavg_round())).splitlines()
    assert lines[0] == "privacy audit of round_"
    header = lines[1]
    assert header.split() == ["output", "client", "input", "aggregations", "on", "the", "path"]
    column = header.index("client input")
    assert all(line[column - 2:column] == "  " and line[column] != " " for line in lines[2:4])


def test_metrics_by_federated_sum_and_a_weighted_mean_list_the_weight_too():
    @fcore.federated_computation(CLIENT_F32, CLIENT_F32)
    def weighted(values, weights):
        return fcore.federated_mean(values, weights), fcore.federated_sum(weights)
    report = fcore.audit(weighted)
    assert report.paths("[0]", "values") == (("federated_weighted_mean",),)
    assert report.paths("[0]", "weights") == (("federated_weighted_mean",),)
    assert report.paths("[1]", "weights") == (("federated_sum",),)
    assert report.inputs_of("[1]") == ["weights"]
    assert report.ok


def test_a_secure_sum_program():
    @fcore.tf_computation(np.int32)
    def clamp(x):
        return tf.clip_by_value(x, 0, 100)

    @fcore.federated_computation(CLIENT_I32)
    def secure(votes):
        clamped = fcore.federated_map(clamp, votes)
        return {"total": fcore.federated_secure_sum(clamped, 100),
                "bits": fcore.federated_secure_sum_bitwidth(clamped, 8),
                "largest": fcore.federated_max(votes)}
    report = fcore.audit(secure)
    assert report.paths("total", "votes") == (("federated_secure_sum",),)
    assert report.paths("bits", "votes") == (("federated_secure_sum_bitwidth",),)
    assert report.paths("largest", "votes") == (("federated_max",),)
    assert report.ok


# Client-placed outputs ----------------------------------------------------------------------

def test_returning_client_values_is_flagged():
    @fcore.tf_computation(F32)
    def double(x):
        return 2.0 * x

    @fcore.federated_computation(CLIENT_F32)
    def leaky(x):
        return collections.OrderedDict(mean=fcore.federated_mean(x),
                                       raw=fcore.federated_map(double, x))
    report = fcore.audit(leaky)
    assert report.client_outputs == ["raw"]
    assert not report.ok
    assert [(f.output, f.input) for f in report.flagged] == [("raw", "x")]
    assert "raw: client-placed output carries client input x with no aggregation" in \
        str(report.flagged[0])
    assert report.paths("raw", "x") == ((),)
    text = str(report)
    assert "client-placed outputs (per-client values leave the computation):" in text
    assert "flagged:\n  raw: client-placed output carries client input x" in text


def test_a_client_value_derived_from_a_broadcast_depends_on_the_server_input_only():
    @fcore.tf_computation(F32)
    def double(x):
        return 2.0 * x

    @fcore.federated_computation(SERVER_F32, CLIENT_F32)
    def spread(state, data):
        shared = fcore.federated_map(double, fcore.federated_broadcast(state))
        mixed = fcore.federated_map(local_step, fcore.federated_zip((shared, data)))
        return shared, mixed
    report = fcore.audit(spread)
    assert report.client_outputs == ["[0]", "[1]"]
    assert report.inputs_of("[0]") == ["state"]
    assert report.inputs_of("[1]") == ["state", "data"]
    assert [f.output for f in report.flagged] == ["[1]"]
    assert "client-placed outputs" in str(report)


# Precision through structs, lambdas, blocks ----------------------------------------------

def test_a_struct_field_on_client_data_and_another_on_the_server_input_only():
    @fcore.federated_computation(SERVER_F32, CLIENT_F32)
    def split(state, data):
        both = collections.OrderedDict(a=fcore.federated_sum(data), b=state)
        return collections.OrderedDict(from_clients=both["a"], from_server=both["b"],
                                       nested=fcore.federated_zip(both))
    report = fcore.audit(split)
    assert report.inputs_of("from_clients") == ["data"]
    assert report.inputs_of("from_server") == ["state"]
    assert report.inputs_of("nested") == ["state", "data"]
    assert report.paths("from_server", "state") == ((),)
    text = str(report)
    assert "outputs with no client input: from_server" in text


def test_selections_after_a_zip_and_a_map_of_a_lambda_stay_precise():
    @fcore.federated_computation(SERVER_F32, CLIENT_F32)
    def pick(state, data):
        zipped = fcore.federated_zip(collections.OrderedDict(
            server=fcore.federated_broadcast(state), client=data))
        only_server = zipped.server  # a map of a selection over the clients
        return fcore.federated_sum(only_server), fcore.federated_sum(zipped.client)
    report = fcore.audit(pick)
    assert report.inputs_of("[0]") == ["state"]
    assert report.inputs_of("[1]") == ["data"]


def test_parsed_text_with_lambdas_and_blocks():
    text = """(arg:<s=float32@SERVER,x={float32}@CLIENTS> -> (let
      pick=(p:<a={float32}@CLIENTS,b=float32@CLIENTS> -> p.b),
      pair=<a=arg.x,b=federated_broadcast(arg.s)>,
      chosen=pick(pair),
      total=(let inner=federated_sum(arg.x) in federated_apply(<@noise,inner>))
    in <only_server=federated_mean(chosen),total=total,direct=arg.s>))"""
    comp = fcore.parse_computation(text, {"noise": gaussian_noise})
    report = fcore.audit(comp)
    assert report.inputs_of("only_server") == ["s"]
    assert report.paths("only_server", "s") == (("federated_mean",),)
    assert report.paths("total", "x") == (("federated_sum", "gaussian_noise"),)  # its name
    assert report.inputs_of("direct") == ["s"]
    assert report.ok


def test_inputs_and_outputs_are_named_by_their_paths():
    text = """(arg:<data=<arg=<{float32}@CLIENTS,{float32}@CLIENTS>>,float32@SERVER> ->
        <m=<federated_sum(arg.data.arg[1]),arg[1]>>)"""
    report = fcore.audit(fcore.parse_computation(text))
    assert [p.path for p in report.inputs] == ["data.arg[0]", "data.arg[1]", "arg[1]"]
    assert [p.path for p in report.outputs] == ["m[0]", "m[1]"]
    assert report.inputs_of("m[0]") == ["data.arg[1]"]
    assert report.inputs_of("m[1]") == ["arg[1]"]


def test_shadowed_names_in_text_resolve_by_scope():
    text = """(x:<a={float32}@CLIENTS,b=float32@SERVER> -> (let
      f=(x:float32@SERVER -> x),
      y=f(x.b),
      x=federated_sum(x.a)
    in <y,x>))"""
    report = fcore.audit(fcore.parse_computation(text))
    assert report.inputs_of("[0]") == ["b"]
    assert report.paths("[1]", "a") == (("federated_sum",),)


def test_nested_computations_and_functions_given_to_intrinsics():
    @fcore.tf_computation(F32)
    def ones(x):
        return tf.ones_like(x)

    @fcore.federated_computation(CLIENT_F32)
    def inner_mean(values):
        return fcore.federated_mean(values)

    @fcore.federated_computation(SERVER_F32, CLIENT_F32)
    def outer(state, data):
        @fcore.federated_computation
        def stats(values):
            return collections.OrderedDict(mean=inner_mean(values),
                                           count=fcore.federated_sum(
                                               fcore.federated_map(ones, values)))
        summary = stats(data)
        updated = fcore.federated_map(
            lambda pair: pair[0], fcore.federated_zip((state, summary["mean"])))
        return collections.OrderedDict(updated=updated, count=summary["count"])

    report = fcore.audit(outer)
    # the lambda keeps only the state: the mean does not reach `updated`
    assert report.inputs_of("updated") == ["state"]
    assert report.paths("count", "data") == (("federated_sum",),)


def test_sequence_reduce_in_a_client_map_and_a_federated_aggregate_reach_a_fixpoint():
    data_type = fcore.FederatedType(fcore.SequenceType(F32), fcore.CLIENTS)

    @fcore.tf_computation(F32, F32)
    def add(a, b):
        return a + b

    @fcore.federated_computation(data_type)
    def reduced(data):
        sums = fcore.federated_map(
            lambda seq: fcore.sequence_reduce(seq, np.float32(0.0), add), data)
        return fcore.federated_mean(sums)
    assert fcore.audit(reduced).paths("result", "data") == (("federated_mean",),)

    # accumulate moves the value from one slot to the other: only a fixpoint sees that the
    # second slot, reported, depends on the clients
    text = """(x:{float32}@CLIENTS -> federated_aggregate(<x, <0.0,0.0>,
        (p:<<float32,float32>,float32> -> <p[1],p[0][0]>),
        (q:<<float32,float32>,<float32,float32>> -> q[0]),
        (r:<float32,float32> -> r[1])>))"""
    report = fcore.audit(fcore.parse_computation(text))
    assert report.paths("result", "x") == (("federated_aggregate",),)


# Noise steps --------------------------------------------------------------------------------

def test_a_dp_aggregator_shows_the_sum_then_the_noise():
    @fcore.federated_computation(CLIENT_F32)
    def dp_sum(values):
        return fcore.federated_map(gaussian_noise, fcore.federated_sum(values))
    report = fcore.audit(dp_sum)
    assert report.paths("result", "values") == (("federated_sum", "gaussian_noise"),)
    assert "result  values        federated_sum -> gaussian_noise" in str(report)
    assert report.dependencies[0].steps == ((("aggregation", "federated_sum"),
                                             ("noise", "gaussian_noise")),)


def test_noise_on_the_clients_before_the_aggregation_and_noise_named_at_audit_time():
    @fcore.federated_computation(CLIENT_F32)
    def local_dp(values):
        return (fcore.federated_sum(fcore.federated_map(gaussian_noise, values)),
                fcore.federated_map(plain_noise, fcore.federated_sum(values)))
    report = fcore.audit(local_dp)
    assert report.paths("[0]", "values") == (("gaussian_noise", "federated_sum"),)
    assert report.paths("[1]", "values") == (("federated_sum",),)
    named = fcore.audit(local_dp, noise=["plain_noise"])
    assert named.paths("[1]", "values") == (("federated_sum", "plain_noise"),)


def test_noise_alone_is_not_an_aggregation():
    @fcore.federated_computation(CLIENT_F32)
    def noised_raw(values):
        return fcore.federated_map(gaussian_noise, values)
    report = fcore.audit(noised_raw)
    assert report.paths("result", "values") == (("gaussian_noise",),)
    assert not report.ok


def test_mark_noise_is_on_the_public_function_and_checks_its_argument():
    assert fcore.audit.mark_noise is mark_noise

    @fcore.audit.mark_noise
    @fcore.tf_computation(F32)
    def laplace_noise(x):
        return x

    assert laplace_noise.ir.computation.privacy_role == "noise"
    with pytest.raises(TypeError, match="federated computation"):
        mark_noise(fedavg_round())
    with pytest.raises(TypeError, match="polymorphic"):
        mark_noise(fcore.tf_computation(lambda x: x))
    with pytest.raises(TypeError, match="expects a tf_computation"):
        mark_noise(42)


# What the audit cannot see into, and what it refuses --------------------------------------

def test_the_aggregations_are_intrinsics_of_the_table():
    from fcore.intrinsics.definitions import INTRINSICS
    assert AGGREGATIONS <= set(INTRINSICS)


def test_an_unknown_intrinsic_moving_client_data_to_the_server_is_flagged():
    clients = fcore.parse_type("{float32}@CLIENTS")
    collect = nodes.Intrinsic("federated_collect",
                              fcore.FunctionType(clients, fcore.parse_type("float32*@SERVER")))
    body = nodes.Call(collect, nodes.Reference("x", clients))
    # (IR, not a Computation: the suite checks that every computation round-trips through
    # text, and the parser knows no such intrinsic)
    report = fcore.audit(nodes.Lambda("x", clients, body))
    assert report.paths("result", "x") == (("federated_collect",),)
    assert report.name == "the IR"
    assert [str(f) for f in report.flagged] == [
        "result: client input x reaches the output with no aggregation (through "
        "federated_collect)"]


def test_a_function_typed_parameter_is_opaque():
    text = """(arg:<f=({float32}@CLIENTS -> float32@SERVER),x={float32}@CLIENTS> ->
        <arg.f(arg.x), arg.f(federated_value_at_clients(1.0))>)"""
    report = fcore.audit(fcore.parse_computation(text))
    assert report.paths("[0]", "x") == (("call of f",),)
    assert report.inputs_of("[1]") == []
    assert [f.output for f in report.flagged] == ["[0]"]


def test_tf_computations_alone_give_an_empty_report():
    report = fcore.audit(local_step)
    assert report.dependencies == [] and report.outputs == [] and report.ok
    assert str(report) == "privacy audit of local_step\nno federated outputs\n\nflagged: none"


def test_an_argumentless_computation_and_errors():
    @fcore.federated_computation
    def constant():
        return fcore.federated_value(np.float32(1.0), fcore.SERVER)
    report = fcore.audit(constant)
    assert [p.path for p in report.outputs] == ["result"] and report.dependencies == []
    assert "no output depends on a client input" in str(report)
    with pytest.raises(KeyError, match="no federated output 'nope'"):
        report.paths("nope", "x")
    with pytest.raises(TypeError, match="polymorphic"):
        fcore.audit(fcore.federated_computation(lambda x: x))
    with pytest.raises(TypeError, match="expects an fcore computation"):
        fcore.audit("(x:int32 -> x)")


# Federated averaging from `learning` ------------------------------------------------------

def test_learning_fedavg_next_audits_sensibly():
    import learning

    class Linear(learning.Model):
        def __init__(self):
            self.w = tf.Variable(np.zeros(2, np.float32))
            self.count = tf.Variable(0.0, trainable=False)

        trainable_variables = property(lambda self: [self.w])
        non_trainable_variables = property(lambda self: [])
        local_variables = property(lambda self: [self.count])
        input_spec = property(lambda self: collections.OrderedDict(
            x=tf.TensorSpec([None, 2], tf.float32), y=tf.TensorSpec([None], tf.float32)))

        def forward_pass(self, batch, training=True):
            predictions = tf.linalg.matvec(batch["x"], self.w)
            n = tf.cast(tf.shape(batch["y"])[0], tf.float32)
            self.count.assign_add(n)
            return learning.BatchOutput(loss=tf.reduce_mean((predictions - batch["y"]) ** 2),
                                        predictions=predictions, num_examples=n)

        def report_local_outputs(self):
            return collections.OrderedDict(count=self.count)

        @property
        def federated_output_computation(self):
            return summed_count

    @fcore.federated_computation
    def summed_count(outputs):
        return collections.OrderedDict(count=fcore.federated_sum(outputs.count))

    process = learning.build_federated_averaging_process(Linear)
    report = fcore.audit(process.next)
    assert [p.path for p in report.outputs] == ["[0]", "[1]"]
    assert report.client_inputs == ["arg[1]"]
    assert report.paths("[0]", "arg[1]") == (("federated_weighted_mean",),)
    assert report.paths("[1]", "arg[1]") == (("federated_sum",),)
    assert report.paths("[0]", "arg[0]") == ((), ("federated_weighted_mean",))
    assert report.ok and report.client_outputs == []
