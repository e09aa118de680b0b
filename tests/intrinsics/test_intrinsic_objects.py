"""Intrinsics as objects that carry their executors' rules (`fcore.intrinsics.definitions`):
each executor's rules are attached to the intrinsics it needs them for, the declarative
properties the scheduling code asks match the intrinsics, a missing rule says which intrinsic
lacks which rule, and a new intrinsic can take rules without touching the global table."""

import pytest

import fcore  # noqa: F401 - importing fcore attaches the executors' rules
from fcore.execution import accumulators
from fcore.intrinsics import definitions
from fcore.intrinsics.definitions import INTRINSICS, Intrinsic, IntrinsicDef, MissingRuleError
from fcore.types import core

PER_CLIENT = {"federated_map", "federated_zip_at_clients", "federated_eval_at_clients"}
AGGREGATIONS = {"federated_sum", "federated_mean", "federated_weighted_mean", "federated_min",
                "federated_max", "federated_aggregate", "federated_secure_sum",
                "federated_secure_sum_bitwidth"}
WHOLE_OPERAND = {"federated_sum", "federated_mean", "federated_weighted_mean", "federated_min",
                 "federated_max"}
AT_CLIENTS = {"federated_broadcast", "federated_value_at_clients", "federated_eval_at_clients",
              "federated_map", "federated_zip_at_clients"}
IN_GRAPH = {"federated_sum", "federated_mean", "federated_weighted_mean", "federated_min",
            "federated_max", "federated_secure_sum", "federated_secure_sum_bitwidth",
            "federated_aggregate"}
MERGE_PARTIALS = IN_GRAPH


def _with(rule):
    return {uri for uri, definition in INTRINSICS.items() if definition.has_rule(rule)}


def test_every_intrinsic_has_reference_semantics():
    for uri, definition in INTRINSICS.items():
        assert callable(definition.rule("reference")), uri


def test_the_fast_executor_streams_every_aggregation():
    assert _with("accumulator") == AGGREGATIONS
    assert _with("member") == PER_CLIENT


def test_lowering_and_dask_rules_are_attached_where_they_run():
    assert _with("in_graph") == IN_GRAPH
    assert _with("merge_partials") == MERGE_PARTIALS
    for uri in IN_GRAPH:
        rule = INTRINSICS[uri].rule("in_graph")
        assert all(callable(getattr(rule, name)) for name in ("initial", "add", "unpack"))
    for uri in MERGE_PARTIALS:
        rule = INTRINSICS[uri].rule("merge_partials")
        assert callable(rule.weight) and callable(rule.merge)
        assert rule.weighted == (uri in ("federated_mean", "federated_weighted_mean"))


def test_only_known_rules_are_attached():
    for uri, definition in INTRINSICS.items():
        assert set(definition.rules) <= set(definitions.RULES), uri


def test_declarative_properties():
    assert {u for u, d in INTRINSICS.items() if d.per_client} == PER_CLIENT
    assert {u for u, d in INTRINSICS.items() if d.aggregation} == AGGREGATIONS
    assert {u for u, d in INTRINSICS.items() if d.whole_operand} == WHOLE_OPERAND
    assert {u for u, d in INTRINSICS.items() if d.result_placement == "CLIENTS"} == AT_CLIENTS
    assert {u for u, d in INTRINSICS.items() if d.result_placement is None} == {
        "sequence_map", "sequence_reduce", "sequence_sum"}
    for uri in AGGREGATIONS:
        assert INTRINSICS[uri].result_placement == "SERVER"


def test_accumulators_start_uses_the_rule():
    fn_type = definitions.lookup("federated_sum").function_type(
        core.FederatedType(core.TensorType("int32"), "CLIENTS"))
    acc = accumulators.start("federated_sum", fn_type, [])
    acc.add(2)
    acc.add(3)
    assert acc.result() == 5


def test_a_missing_rule_names_the_intrinsic_and_the_rule():
    with pytest.raises(MissingRuleError, match=r"Intrinsic 'federated_map' has no "
                       r"'in_graph' rule \(its rules: member, reference\)\."):
        INTRINSICS["federated_map"].rule("in_graph")
    with pytest.raises(MissingRuleError, match="'federated_broadcast' has no 'merge_partials'"):
        accumulators.lookup("federated_broadcast").rule("merge_partials")
    assert issubclass(MissingRuleError, NotImplementedError)


def test_the_former_name_is_the_class():
    assert IntrinsicDef is Intrinsic
    assert all(isinstance(d, Intrinsic) for d in INTRINSICS.values())


def _identity_rule(t):
    return t


def test_a_new_intrinsic_takes_rules_without_touching_the_table():
    before = dict(INTRINSICS)
    test_only = Intrinsic("test_only_identity", "(T -> T)", _identity_rule, "Test only.",
                          aggregation=True)
    with pytest.raises(MissingRuleError, match="'test_only_identity' has no 'reference' rule "
                       r"\(its rules: none\)"):
        test_only.rule("reference")

    def implementation(interp, fn_type, argument):
        return argument

    assert test_only.def_rule("reference", implementation) is implementation
    test_only.def_rule("custom", object())
    assert test_only.rule("reference") is implementation
    assert test_only.rules == ("reference", "custom")
    assert test_only.has_rule("reference") and not test_only.has_rule("accumulator")
    assert test_only.aggregation and not test_only.per_client
    assert test_only.result_placement is None
    int32 = core.TensorType("int32")
    assert test_only.function_type(int32) == core.FunctionType(int32, int32)
    assert INTRINSICS == before and "test_only_identity" not in definitions.markdown_table()


def test_a_temporarily_registered_intrinsic_is_looked_up(monkeypatch):
    test_only = Intrinsic("test_only_registered", "(T -> T)", _identity_rule, "Test only.")
    monkeypatch.setitem(INTRINSICS, "test_only_registered", test_only)
    assert definitions.lookup("test_only_registered") is test_only
    assert definitions.get("test_only_registered") is test_only
    assert "`test_only_registered`" in definitions.markdown_table()


def test_the_temporary_intrinsic_is_gone():
    assert definitions.get("test_only_registered") is None
    with pytest.raises(NameError, match="Unknown intrinsic 'test_only_registered'"):
        definitions.lookup("test_only_registered")
