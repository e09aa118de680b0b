"""One table of intrinsics: name, signature (a type string with variables T, U, ...), and the
rule that computes the result type from a concrete argument type, or raises a `TypeError`
that says what was expected. Both tracing and `parse_computation` use this table.

Each intrinsic is one `Intrinsic` object, in the spirit of JAX's primitives: besides its type
rule it carries declarative properties that scheduling code asks (`per_client`,
`aggregation`, `whole_operand`, `result_placement`), and the rules that say what it does for
each executor. Those rules are attached by the executors themselves when they are imported
(`definition.def_rule("reference", fn)`; this layer imports none of them), and looked up with
`definition.rule(name)`, which names the intrinsic and the missing rule when there is none."""

from __future__ import annotations

from typing import Callable

from fcore.types import core
from fcore.types.placements import CLIENTS, SERVER

_NUMERIC = "iuf"  # NumPy kinds: ints, unsigned ints, floats (not bool)

# The rules executors attach, and what each is (for messages and the docs table).
RULES = {
    "reference": "what it computes on runtime values (the reference interpreter; "
                 "fcore.execution.intrinsic_impls)",
    "member": "one client's member of a per-client intrinsic (streaming passes; "
              "fcore.execution.streaming)",
    "accumulator": "a streaming accumulator fed one client at a time (the fast executor; "
                   "fcore.execution.accumulators)",
    "in_graph": "its accumulation inside a compiled client loop (fcore.execution.lowering)",
    "merge_partials": "merging the partial results of chunks of clients (the Dask executor; "
                      "fcore.execution.distributed)",
}


class MissingRuleError(NotImplementedError):
    """An intrinsic lacks the rule an executor asked for."""


class Intrinsic:
    """One intrinsic: its uri, signature, type rule and doc, its declarative properties, and
    the executors' rules attached to it (`def_rule`, `rule`, `has_rule`).

    - `per_client`: computed client by client (`federated_map`, `federated_zip_at_clients`,
      `federated_eval_at_clients`): streaming passes run it once per client.
    - `aggregation`: combines the clients' values into one server value.
    - `whole_operand`: for an aggregation, whether the client-placed operand is the whole
      argument (sums, means, extrema; a weighted mean's `<value,weight>`), not its first
      element (the others' further elements are server-side: zero and functions, bounds).
    - `result_placement`: "CLIENTS", "SERVER" or None (no placement), from the signature."""

    def __init__(self, uri: str, signature: str, type_rule: Callable, doc: str, *,
                 per_client: bool = False, aggregation: bool = False,
                 whole_operand: bool = False):
        self.uri = uri
        self.signature = signature  # for documentation; parsed by grammar/types.lark
        self.type_rule = type_rule  # argument type -> result type
        self.doc = doc
        self.per_client = per_client
        self.aggregation = aggregation
        self.whole_operand = whole_operand
        self._rules: dict[str, object] = {}

    def __repr__(self):
        return f"Intrinsic({self.uri!r})"

    @property
    def result_placement(self):
        result = self.signature[self.signature.rindex(" -> ") + 4:-1]
        for placement in ("CLIENTS", "SERVER"):
            if result.endswith("@" + placement):
                return placement
        return None

    # Executors' rules ----------------------------------------------------------------------

    def def_rule(self, name: str, rule):
        """Attaches `rule` as this intrinsic's rule `name` (replacing one already there);
        returns `rule`, so that it can decorate a function."""
        self._rules[name] = rule
        return rule

    def rule(self, name: str):
        try:
            return self._rules[name]
        except KeyError:
            have = ", ".join(sorted(self._rules)) or "none"
            raise MissingRuleError(f"Intrinsic {self.uri!r} has no {name!r} rule (its rules: "
                                   f"{have}).") from None

    def has_rule(self, name: str) -> bool:
        return name in self._rules

    @property
    def rules(self) -> tuple:
        """The names of the rules attached, in the order of `RULES` (then any others)."""
        known = [name for name in RULES if name in self._rules]
        return tuple(known + sorted(set(self._rules) - set(known)))

    # Types ---------------------------------------------------------------------------------

    def result_type(self, argument_type):
        if argument_type is None:
            raise TypeError(f"{self.uri} takes an argument of type {self.signature_param()}.")
        return self.type_rule(argument_type)

    def signature_param(self):
        return self.signature[1:self.signature.rindex(" -> ")]

    def function_type(self, argument_type):
        return core.FunctionType(argument_type, self.result_type(argument_type))


IntrinsicDef = Intrinsic  # the former name

INTRINSICS: dict[str, Intrinsic] = {}


def _define(uri, signature, doc, **properties):
    def register(rule):
        INTRINSICS[uri] = Intrinsic(uri, signature, rule, doc, **properties)
        return rule
    return register


def lookup(uri) -> Intrinsic:
    try:
        return INTRINSICS[uri]
    except KeyError:
        raise NameError(f"Unknown intrinsic {uri!r}.") from None


def get(uri):
    """The intrinsic named `uri`, or None if there is none."""
    return INTRINSICS.get(uri)


def markdown_table() -> str:
    """The table of intrinsics in Markdown (name, type signature, meaning, the executors'
    rules attached), generated from this table for docs/language.md, where a test keeps it
    current. The rules are those fcore's executors attach when imported (importing `fcore`
    imports them)."""
    rows = ["| intrinsic | type | meaning | rules |", "|---|---|---|---|"]
    for uri, definition in INTRINSICS.items():
        doc = " ".join(definition.doc.split()).replace("|", "\\|")
        rules = ", ".join(f"`{name}`" for name in definition.rules)
        rows.append(f"| `{uri}` | `{definition.signature}` | {doc} | {rules} |")
    return "\n".join(rows) + "\n"


# Helpers -----------------------------------------------------------------------------------

def _elements(type_, uri, count, names):
    if not isinstance(type_, core.StructType) or len(type_) != count:
        raise TypeError(f"{uri} expects an argument <{','.join(names)}>, found {type_}.")
    return list(type_)


def _placed(type_, placement, what):
    if not isinstance(type_, core.FederatedType):
        raise TypeError(f"The value {what} should be placed at {placement.name}, but it is not "
                        f"a federated value: {type_}.")
    if type_.placement is not placement:
        raise TypeError(f"The value {what} should be placed at {placement.name}, but it is "
                        f"placed at {type_.placement.name}.")
    return type_


def _tensor_leaves(type_):
    if isinstance(type_, core.TensorType):
        return [type_]
    if isinstance(type_, core.StructType):
        return [leaf for element in type_ for leaf in _tensor_leaves(element)]
    return None


def _all_leaves(type_, kinds):
    leaves = _tensor_leaves(type_)
    return leaves is not None and all(t.dtype.kind in kinds for t in leaves)


def _fn(type_, uri, role):
    if not isinstance(type_, core.FunctionType):
        raise TypeError(f"{uri} expects {role} to be a function, found {type_}.")
    return type_


def _check_param(fn_type, expected, uri, role):
    if fn_type.parameter is None or not fn_type.parameter.is_assignable_from(expected):
        wanted = core.FunctionType(expected, fn_type.result)
        raise TypeError(f"Expected parameter `{role}` to be of type {wanted}, but received "
                        f"{fn_type} instead.")


def _without_federated(type_, what, placement):
    if core.find_path(type_, (core.FunctionType,)) is not None:
        raise TypeError(f"Cannot place value {what} at {placement.name}: it is or contains a "
                        f"function; only data (tensors, structs, sequences) can be placed.")
    if core.find_path(type_, (core.FederatedType,)) is not None:
        raise TypeError(f"Cannot place value {what} containing federated types at another "
                        f"placement; requested to be placed at {placement.name}.")


# Placement changes -------------------------------------------------------------------------

@_define("federated_broadcast", "(T@SERVER -> T@CLIENTS)",
         "The server value, made available (equal) at every client.")
def _broadcast(t):
    _placed(t, SERVER, "to be broadcasted")
    if not t.all_equal:
        raise TypeError(f"The broadcasted value should be equal at all locations, found {t}.")
    return core.FederatedType(t.member, CLIENTS, all_equal=True)


@_define("federated_value_at_server", "(T -> T@SERVER)", "A constant placed at the server.")
def _value_at_server(t):
    _without_federated(t, str(t), SERVER)
    return core.FederatedType(t, SERVER)


@_define("federated_value_at_clients", "(T -> T@CLIENTS)", "A constant, equal at every client.")
def _value_at_clients(t):
    _without_federated(t, str(t), CLIENTS)
    return core.FederatedType(t, CLIENTS, all_equal=True)


@_define("federated_eval_at_server", "(( -> T) -> T@SERVER)", "Runs a function at the server.")
def _eval_at_server(t):
    fn = _fn(t, "federated_eval", "its argument")
    if fn.parameter is not None:
        raise TypeError(f"federated_eval expects a function with no parameter, found {fn}.")
    _without_federated(fn.result, str(fn.result), SERVER)
    return core.FederatedType(fn.result, SERVER)


@_define("federated_eval_at_clients", "(( -> T) -> {T}@CLIENTS)",
         "Runs a function at every client, giving one result per client.", per_client=True)
def _eval_at_clients(t):
    fn = _fn(t, "federated_eval", "its argument")
    if fn.parameter is not None:
        raise TypeError(f"federated_eval expects a function with no parameter, found {fn}.")
    _without_federated(fn.result, str(fn.result), CLIENTS)
    return core.FederatedType(fn.result, CLIENTS, all_equal=False)


# Maps --------------------------------------------------------------------------------------

def _map_rule(uri, placement, result_all_equal):
    def rule(t):
        fn, value = _elements(t, uri, 2, ["(T -> U)", f"T@{placement.name}"])
        fn = _fn(fn, uri, "the mapping function")
        if not isinstance(value, core.FederatedType):
            raise TypeError(f"The value to be mapped must be a FederatedType or implicitly "
                            f"convertible to a FederatedType (got a {value}).")
        _placed(value, placement, "to be mapped")
        if fn.parameter is None or not fn.parameter.is_assignable_from(value.member):
            raise TypeError(f"The mapping function expects a parameter of type {fn.parameter}, "
                            f"but member constituents of the mapped value are of incompatible "
                            f"type {value.member}.")
        all_equal = value.all_equal if result_all_equal is None else result_all_equal
        return core.FederatedType(fn.result, placement, all_equal=all_equal)
    return rule


_define("federated_map", "(<(T -> U),{T}@CLIENTS> -> {U}@CLIENTS)",
        "Applies a function to each client's value.", per_client=True)(
    _map_rule("federated_map", CLIENTS, False))
_define("federated_apply", "(<(T -> U),T@SERVER> -> U@SERVER)",
        "Applies a function to the server's value.")(
    _map_rule("federated_apply", SERVER, None))


# Aggregations ------------------------------------------------------------------------------

@_define("federated_sum", "({T}@CLIENTS -> T@SERVER)", "The sum of the clients' values.",
         aggregation=True, whole_operand=True)
def _sum(t):
    _placed(t, CLIENTS, "to be summed")
    if not _all_leaves(t.member, _NUMERIC + "c"):
        raise TypeError(f"The value type {t} is not compatible with the sum operator.")
    return core.FederatedType(t.member, SERVER)


@_define("federated_mean", "({T}@CLIENTS -> T@SERVER)", "The mean of the clients' values.",
         aggregation=True, whole_operand=True)
def _mean(t):
    _placed(t, CLIENTS, "to be averaged")
    if not _all_leaves(t.member, "fc"):
        raise TypeError(f"The value type {t} is not compatible with the average operator.")
    return core.FederatedType(t.member, SERVER)


@_define("federated_weighted_mean", "(<{T}@CLIENTS,{U}@CLIENTS> -> T@SERVER)",
         "The mean of the clients' values, each weighted by its client's weight.",
         aggregation=True, whole_operand=True)
def _weighted_mean(t):
    value, weight = _elements(t, "federated_mean", 2, ["value", "weight"])
    result = _mean(value)
    _placed(weight, CLIENTS, "of the weight")
    if not isinstance(weight.member, core.TensorType) or weight.member.shape != () or \
            weight.member.dtype.kind not in _NUMERIC:
        raise TypeError(f"The weight of federated_mean must be a numeric scalar at CLIENTS, "
                        f"found {weight}.")
    return result


def _extremum(uri):
    def rule(t):
        _placed(t, CLIENTS, f"of {uri}")
        if not _all_leaves(t.member, _NUMERIC):
            raise TypeError(f"The value type {t} is not compatible with {uri}.")
        return core.FederatedType(t.member, SERVER)
    return rule


_define("federated_min", "({T}@CLIENTS -> T@SERVER)", "The element-wise minimum over clients.",
        aggregation=True, whole_operand=True)(
    _extremum("federated_min"))
_define("federated_max", "({T}@CLIENTS -> T@SERVER)", "The element-wise maximum over clients.",
        aggregation=True, whole_operand=True)(
    _extremum("federated_max"))


@_define("federated_aggregate",
         "(<{T}@CLIENTS,U,(<U,T> -> U),(<U,U> -> U),(U -> R)> -> R@SERVER)",
         "Folds the clients' values into `zero` with `accumulate`, combines partial results "
         "with `merge`, and finishes with `report`; `zero` must be an identity of `merge` "
         "(checked: `merge(zero, zero) == zero`).", aggregation=True)
def _aggregate(t):
    value, zero, accumulate, merge, report = _elements(
        t, "federated_aggregate", 5, ["value", "zero", "accumulate", "merge", "report"])
    _placed(value, CLIENTS, "to be aggregated")
    if core.find_path(zero, (core.FederatedType,)) is not None:
        raise TypeError(f"The zero of federated_aggregate must not be federated, found {zero}.")
    accumulate = _fn(accumulate, "federated_aggregate", "`accumulate`")
    _check_param(accumulate, core.StructType([zero, value.member]), "federated_aggregate",
                 "accumulate")
    if not zero.is_assignable_from(accumulate.result):
        raise TypeError(f"Expected parameter `accumulate` to return the type of `zero`, {zero}, "
                        f"but it returns {accumulate.result}.")
    merge = _fn(merge, "federated_aggregate", "`merge`")
    _check_param(merge, core.StructType([accumulate.result, accumulate.result]),
                 "federated_aggregate", "merge")
    if not zero.is_assignable_from(merge.result):
        raise TypeError(f"Expected parameter `merge` to return the type of `zero`, {zero}, but "
                        f"it returns {merge.result}.")
    report = _fn(report, "federated_aggregate", "`report`")
    _check_param(report, merge.result, "federated_aggregate", "report")
    return core.FederatedType(report.result, SERVER)


def _secure_rule(uri, bound_name):
    def rule(t):
        value, bound = _elements(t, uri, 2, ["value", bound_name])
        _placed(value, CLIENTS, "to be summed securely")
        if not _all_leaves(value.member, "iu"):
            raise TypeError(f"{uri} needs integer values, found {value}.")
        if not _all_leaves(bound, "iu"):
            raise TypeError(f"The {bound_name} of {uri} must be integers, found {bound}.")
        if not isinstance(bound, core.TensorType) and \
                len(_tensor_leaves(bound)) != len(_tensor_leaves(value.member)):
            raise TypeError(f"The {bound_name} {bound} of {uri} must be one integer or match "
                            f"the structure of {value.member}.")
        return core.FederatedType(value.member, SERVER)
    return rule


_define("federated_secure_sum", "(<{V}@CLIENTS,M> -> V@SERVER)",
        "The sum of integer client values, each in [0, max_input] (simulated).",
        aggregation=True)(
    _secure_rule("federated_secure_sum", "max_input"))
_define("federated_secure_sum_bitwidth", "(<{V}@CLIENTS,B> -> V@SERVER)",
        "The sum of integer client values, each in [0, 2**bitwidth - 1] (simulated).",
        aggregation=True)(
    _secure_rule("federated_secure_sum_bitwidth", "bitwidth"))


# Zips --------------------------------------------------------------------------------------

def _zip_rule(placement):
    def rule(t):
        if not isinstance(t, core.StructType) or len(t) == 0:
            raise TypeError(f"federated_zip expects a non-empty struct of federated values, "
                            f"found {t}.")
        leaves = _federated_leaves(t)
        found = sorted({leaf.placement.name for leaf in leaves}, key=["CLIENTS", "SERVER"].index)
        if found != [placement.name]:
            raise TypeError(f"federated_zip requires all nested FederatedTypes to have the same "
                            f"placement, but values placed at {', '.join(found)} were found.")
        all_equal = placement is SERVER
        return core.FederatedType(_unplaced(t), placement, all_equal=all_equal)
    return rule


def _federated_leaves(t):
    if isinstance(t, core.FederatedType):
        return [t]
    if isinstance(t, core.StructType):
        return [leaf for element in t for leaf in _federated_leaves(element)]
    raise TypeError(f"federated_zip expects only federated values in the struct, found {t}.")


def _unplaced(t):
    if isinstance(t, core.FederatedType):
        return t.member
    return core.StructType([(name, _unplaced(element)) for name, element in t.items()])


_define("federated_zip_at_server", "(<T@SERVER,U@SERVER> -> <T,U>@SERVER)",
        "A struct of server values (any number, nested) as one server value of structs.")(
    _zip_rule(SERVER))
_define("federated_zip_at_clients", "(<{T}@CLIENTS,{U}@CLIENTS> -> {<T,U>}@CLIENTS)",
        "A struct of client values (any number, nested) as one client value of structs.",
        per_client=True)(
    _zip_rule(CLIENTS))


# Sequences ---------------------------------------------------------------------------------

def _sequence(t, uri):
    if not isinstance(t, core.SequenceType):
        raise TypeError(f"{uri} expects a sequence (T*), found {t}.")
    return t


@_define("sequence_map", "(<(T -> U),T*> -> U*)", "Applies a function to each element.")
def _sequence_map(t):
    fn, seq = _elements(t, "sequence_map", 2, ["(T -> U)", "T*"])
    fn = _fn(fn, "sequence_map", "the mapping function")
    seq = _sequence(seq, "sequence_map")
    if fn.parameter is None or not fn.parameter.is_assignable_from(seq.element):
        raise TypeError(f"The mapping function expects a parameter of type {fn.parameter}, but "
                        f"the sequence elements are of incompatible type {seq.element}.")
    return core.SequenceType(fn.result)


@_define("sequence_reduce", "(<T*,U,(<U,T> -> U)> -> U)",
         "Folds the elements into `zero` with `op`.")
def _sequence_reduce(t):
    seq, zero, op = _elements(t, "sequence_reduce", 3, ["T*", "U", "(<U,T> -> U)"])
    seq = _sequence(seq, "sequence_reduce")
    op = _fn(op, "sequence_reduce", "the reducing function")
    _check_param(op, core.StructType([zero, seq.element]), "sequence_reduce", "op")
    if not zero.is_assignable_from(op.result):
        raise TypeError(f"The reducing function returns {op.result}, which does not fit the "
                        f"zero's type {zero}.")
    return zero


@_define("sequence_sum", "(T* -> T)", "The sum of the elements.")
def _sequence_sum(t):
    seq = _sequence(t, "sequence_sum")
    if not _all_leaves(seq.element, _NUMERIC + "c"):
        raise TypeError(f"The element type {seq.element} is not compatible with the sum "
                        f"operator.")
    return seq.element

