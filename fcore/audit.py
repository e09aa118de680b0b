"""A privacy audit of a federated computation: `audit(comp)`.

For each output of the computation (each federated leaf of its result type, named by its
path: `[0]`, `metrics.loss`, `state.model`), the audit lists the inputs it depends on (each
federated leaf of the parameter type, and each unplaced one) and, for every dependency path,
the steps on it that matter for privacy: the aggregations (`federated_mean`,
`federated_secure_sum`, ...) and the TF leaves marked as noise steps (`mark_noise`), so a
DP aggregator built from a sum and a noise leaf shows `federated_sum -> gaussian_noise`.

A client input that reaches an output with no aggregation on its path is flagged: a
client-placed output (`{T}@CLIENTS`, a `federated_map` result returned as it is) that
carries client data, or a server output reached through something the audit cannot see
into (a function-typed parameter, an intrinsic it does not know).

The analysis is an abstract interpretation of the IR: every value is abstracted to the
inputs it depends on, each with the steps on its path, kept apart for each element of a
struct (also a federated struct's members), so `<a=x,b=y>.a` depends on `x` only. Lambdas
and blocks are followed as they are called (a nested computation, a function given to an
intrinsic); a TF leaf's result depends on all of its argument; a broadcast, zip or map
keeps the dependencies of what it moves; an aggregation adds itself to every path through
it; `sequence_reduce` and `federated_aggregate` repeat their functions until nothing
changes. Loops and recursion do not exist in the language, so the walk ends.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

from fcore.computation import Computation
from fcore.ir import analysis, nodes, printer
from fcore.types import core
from fcore.types.placements import CLIENTS

#: The intrinsics that combine the clients' values into one server value.
AGGREGATIONS = frozenset({
    "federated_sum", "federated_mean", "federated_weighted_mean", "federated_min",
    "federated_max", "federated_aggregate", "federated_secure_sum",
    "federated_secure_sum_bitwidth"})
# Intrinsics that move or combine values without changing who they come from.
_IDENTITY = frozenset({"federated_broadcast", "federated_value_at_server",
                       "federated_value_at_clients", "federated_zip_at_server",
                       "federated_zip_at_clients"})
_SIMPLE_AGGREGATIONS = frozenset({"federated_sum", "federated_mean", "federated_min",
                                  "federated_max"})
_MAX_ROUNDS = 64  # fixpoint rounds for the functions of sequence_reduce / federated_aggregate

NOISE = "noise"  # the `privacy_role` of a noise step

# Step kinds on a dependency path.
AGGREGATION, NOISE_STEP, UNKNOWN_INTRINSIC, OPAQUE = "aggregation", "noise", "intrinsic", \
    "opaque"


def mark_noise(comp):
    """Marks the TF computation `comp` as a noise step (sets `privacy_role = "noise"` on the
    TF function it wraps): the audit shows it by name on every path through it. Returns
    `comp`, so it also works as a decorator above `@fcore.tf_computation(...)`.

    The mark lives on the TF function, so it holds wherever the computation is used (traced
    into others, or given to `parse_computation` in `env`); a computation loaded with
    `fcore.load` has new TF functions: name its noise leaves with `audit(comp, noise=...)`."""
    target = _tf_function(comp)
    try:
        target.privacy_role = NOISE
    except AttributeError:
        raise TypeError(f"mark_noise: cannot mark {comp!r}.") from None
    return comp


def _tf_function(comp):
    if isinstance(comp, Computation):
        if isinstance(comp.ir, nodes.TFLeaf):
            return comp.ir.computation
        raise TypeError(f"mark_noise expects a tf_computation; {comp.name} is a federated "
                        f"computation: mark the TF computation that adds the noise.")
    if isinstance(comp, nodes.TFLeaf):
        return comp.computation
    if hasattr(comp, "instantiate") and hasattr(comp, "name"):
        raise TypeError(f"mark_noise: {comp.name} is polymorphic (declared without parameter "
                        f"types); give it its types to mark it.")
    if hasattr(comp, "run") and hasattr(comp, "type_signature"):  # a TF function itself
        return comp
    raise TypeError(f"mark_noise expects a tf_computation, found {type(comp).__name__}.")


def is_noise(leaf: nodes.TFLeaf) -> bool:
    """Whether the TF leaf `leaf` is marked as a noise step."""
    return getattr(leaf.computation, "privacy_role", None) == NOISE


# The report ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Dependency:
    """One output that depends on one input.

    `paths`: for each distinct dependency path, the names of its steps in order
    (aggregations, noise steps, and anything the audit could not see into: an unknown
    intrinsic by its name, a call of a function-typed parameter as `call of f`); `()` is a
    direct dependency. `steps` holds the same paths with each step's kind."""

    output: str
    output_placement: str  # "SERVER", "CLIENTS" or "unplaced"
    input: str
    input_placement: str  # "CLIENTS", "SERVER" or "unplaced"
    steps: tuple  # ((kind, name), ...) per path

    @property
    def paths(self) -> tuple:
        return tuple(tuple(name for _, name in path) for path in self.steps)

    @property
    def aggregated(self) -> bool:
        """Every path passes an aggregation."""
        return all(any(kind == AGGREGATION for kind, _ in path) for path in self.steps)

    @property
    def from_clients(self) -> bool:
        return self.input_placement == "CLIENTS"


@dataclasses.dataclass(frozen=True)
class Flag:
    """A client input that reaches an output with no aggregation on some path."""

    output: str
    input: str
    message: str

    def __str__(self):
        return self.message


@dataclasses.dataclass(frozen=True)
class Port:
    """An input or output of the computation: its path, placement and type."""

    path: str
    placement: str  # "SERVER", "CLIENTS" or "unplaced"
    type_signature: core.Type


class AuditReport:
    """What `audit(comp)` found. `dependencies` lists every (output, input) pair with its
    paths; `client_dependencies` those on client inputs; `client_outputs` the client-placed
    outputs; `flagged` the unaggregated client data (`Flag`s); `ok` is True when nothing is
    flagged. `str(report)` is a fixed-width table."""

    def __init__(self, name, inputs, outputs, dependencies):
        self.name = name
        self.inputs: list[Port] = list(inputs)
        self.outputs: list[Port] = list(outputs)
        self.dependencies: list[Dependency] = list(dependencies)
        self.flagged: list[Flag] = [flag for d in self.dependencies
                                    for flag in _flags(d)]

    @property
    def ok(self) -> bool:
        return not self.flagged

    @property
    def client_inputs(self) -> list:
        return [p.path for p in self.inputs if p.placement == "CLIENTS"]

    @property
    def client_outputs(self) -> list:
        return [p.path for p in self.outputs if p.placement == "CLIENTS"]

    @property
    def client_dependencies(self) -> list:
        return [d for d in self.dependencies if d.from_clients]

    def inputs_of(self, output: str, placement: str | None = None) -> list:
        """The paths of the inputs `output` depends on (of one placement, if given)."""
        self._output(output)
        return [d.input for d in self.dependencies if d.output == output and
                (placement is None or d.input_placement == placement)]

    def paths(self, output: str, input: str) -> tuple:
        """The step names on each path from `input` to `output`; `()` if there is none."""
        self._output(output)
        for d in self.dependencies:
            if d.output == output and d.input == input:
                return d.paths
        if input not in {p.path for p in self.inputs}:
            raise KeyError(f"{self.name} has no input {input!r}; its inputs: "
                           f"{', '.join(p.path for p in self.inputs) or 'none'}.")
        return ()

    def _output(self, output):
        if output not in {p.path for p in self.outputs}:
            raise KeyError(f"{self.name} has no federated output {output!r}; its outputs: "
                           f"{', '.join(p.path for p in self.outputs) or 'none'}.")

    def __str__(self):
        lines = [f"privacy audit of {self.name}"]
        placed = [p for p in self.outputs if p.placement != "unplaced"]
        if not placed and not self.dependencies:
            lines.append("no federated outputs")
        server_rows, client_rows, other_rows = [], [], []
        for d in self.dependencies:
            for path in d.steps or ((),):
                text = " -> ".join(name for _, name in path) or (
                    "(none)" if d.from_clients else "(direct)")
                row = (d.output, d.input, text)
                if not d.from_clients:
                    other_rows.append(row + (d.input_placement,))
                elif d.output_placement == "CLIENTS":
                    client_rows.append(row)
                else:
                    server_rows.append(row)
        if server_rows:
            lines += _table(("output", "client input", "aggregations on the path"),
                            server_rows)
        elif placed:
            lines.append("no output depends on a client input")
        if client_rows:
            lines.append("")
            lines.append("client-placed outputs (per-client values leave the computation):")
            lines += _table(("output", "client input", "aggregations on the path"),
                            client_rows)
        elif self.client_outputs:
            lines.append(f"client-placed outputs, with no client input: "
                         f"{', '.join(self.client_outputs)}")
        with_clients = {d.output for d in self.dependencies if d.from_clients}
        without = [p.path for p in placed if p.path not in with_clients]
        if without and server_rows:
            lines.append(f"outputs with no client input: {', '.join(without)}")
        if other_rows:
            lines.append("")
            lines.append("server and unplaced inputs:")
            lines += _table(("output", "input", "placed", "steps on the path"),
                            [(o, i, p, t) for o, i, t, p in other_rows])
        lines.append("")
        if self.flagged:
            lines.append("flagged:")
            lines += [f"  {flag}" for flag in self.flagged]
        else:
            lines.append("flagged: none")
        return "\n".join(lines)

    def __repr__(self):
        return (f"<AuditReport {self.name}: {len(self.outputs)} outputs, "
                f"{len(self.client_dependencies)} client dependencies, "
                f"{len(self.flagged)} flagged>")


def _table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    def line(row):
        return "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
    return [line(header)] + [line(r) for r in rows]


def _flags(dependency):
    if not dependency.from_clients:
        return []
    bad = [path for path in dependency.steps
           if not any(kind == AGGREGATION for kind, _ in path)]
    if not bad:
        return []
    out, inp = dependency.output, dependency.input
    if dependency.output_placement == "CLIENTS":
        message = (f"{out}: client-placed output carries client input {inp} with no "
                   f"aggregation (per-client values leave the computation)")
    else:
        through = "; ".join(" -> ".join(name for _, name in path) or "directly"
                            for path in bad)
        message = (f"{out}: client input {inp} reaches the output with no aggregation "
                   f"(through {through})")
    return [Flag(out, inp, message)]


# The audit ----------------------------------------------------------------------------------

def audit(comp, noise: Iterable[str] = ()) -> AuditReport:
    """The privacy audit of the computation `comp` (built by `fcore.federated_computation`
    or `fcore.parse_computation`; an IR node of a function type works too): for each
    output, the inputs it depends on and the aggregations and noise steps on each path
    (see `AuditReport`).

    `noise` names TF leaves to treat as noise steps besides those marked with `mark_noise`
    (a leaf's own name, or its name as `str(comp)` prints it, without `@`). A TF
    computation alone has no placements and gives an empty report."""
    if isinstance(comp, Computation):
        ir, fn_type, name = comp.ir, comp.type_signature, comp.name
    elif isinstance(comp, nodes.Node) and isinstance(comp.type_signature, core.FunctionType):
        ir, fn_type, name = comp, comp.type_signature, "the IR"
    elif hasattr(comp, "instantiate"):
        raise TypeError(f"audit: {getattr(comp, 'name', comp)} is polymorphic (declared "
                        f"without parameter types); audit it once it has types.")
    else:
        raise TypeError(f"audit expects an fcore computation, found {type(comp).__name__}"
                        f"{' (audit its next)' if hasattr(comp, 'next') else ''}.")
    if isinstance(noise, str):
        noise = (noise,)
    return _Audit(ir, fn_type, name, frozenset(noise)).report()


_EMPTY = frozenset()


class _Closure:
    """A lambda with the scope it was made in."""

    __slots__ = ("fn", "scope")

    def __init__(self, fn, scope):
        self.fn, self.scope = fn, scope


class _Opaque:
    """A function the audit cannot see into: its result depends on its argument and on
    `captured`; `label` names it as a step (a function-typed parameter), or None."""

    __slots__ = ("label", "captured")

    def __init__(self, label, captured):
        self.label, self.captured = label, captured

    def __eq__(self, other):
        return isinstance(other, _Opaque) and (self.label, self.captured) == \
            (other.label, other.captured)

    def __hash__(self):
        return hash((self.label, self.captured))


class _Scope:
    __slots__ = ("names", "parent")

    def __init__(self, names, parent):
        self.names, self.parent = names, parent

    def lookup(self, name):
        scope = self
        while scope is not None:
            if name in scope.names:
                return scope.names[name]
            scope = scope.parent
        return None


# Abstract values: a frozenset of facts `(input index, ((kind, name), ...))` for a tensor or
# sequence (a sequence's elements are not told apart); a tuple of abstract values for a
# struct (a federated value is abstracted as its member); for a function, a `_Closure`, an
# `_Opaque`, or the `nodes.TFLeaf` / `nodes.Intrinsic` itself.

def _spread(deps, type_):
    """The abstract value of type `type_` whose every part depends on `deps`."""
    if isinstance(type_, core.FederatedType):
        return _spread(deps, type_.member)
    if isinstance(type_, core.StructType):
        return tuple(_spread(deps, element) for element in type_)
    if isinstance(type_, core.FunctionType):
        return _Opaque(None, deps)
    return deps


def _map_deps(value, fn):
    if isinstance(value, frozenset):
        return fn(value)
    if isinstance(value, tuple):
        return tuple(_map_deps(v, fn) for v in value)
    if isinstance(value, _Opaque):
        return _Opaque(value.label, fn(value.captured))
    return value  # closures and leaves: what they capture is read when they are called


def _with_step(value, step):
    return _map_deps(value, lambda deps: frozenset((i, path + (step,)) for i, path in deps))


def _with_deps(value, extra):
    return value if not extra else _map_deps(value, lambda deps: deps | extra)


def _join(a, b):
    if a is b or a == b:
        return a
    if isinstance(a, frozenset) and isinstance(b, frozenset):
        return a | b
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        return tuple(_join(x, y) for x, y in zip(a, b))
    return _Opaque(None, _collapse(a) | _collapse(b))


def _element(type_, index):
    while isinstance(type_, core.FederatedType):
        type_ = type_.member
    return type_[index] if isinstance(type_, core.StructType) else None


def _member(type_):
    return type_.member if isinstance(type_, core.FederatedType) else type_


class _Audit:
    def __init__(self, ir, fn_type, name, noise_names):
        self.ir, self.fn_type, self.name = ir, fn_type, name
        self.noise_names = noise_names
        self.noise_functions = {id(fn) for printed, fn in printer.leaves(ir).items()
                                if printed in noise_names}
        self.inputs: list[Port] = []
        self._free = {}  # id(lambda) -> its free names

    def report(self):
        # unique binders: a block's bindings share one scope below
        ir, fn_type = analysis.uniquify(self.ir), self.fn_type
        if isinstance(ir, nodes.Lambda):
            if ir.parameter_name is None:
                result = self._eval(ir.body, None)
            else:
                argument = self._input(fn_type.parameter, self.ir.parameter_name)
                result = self._eval(ir.body, _Scope({ir.parameter_name: argument}, None))
        elif isinstance(ir, nodes.TFLeaf) and fn_type.parameter is not None:
            argument = self._input(fn_type.parameter, "arg")
            result = self._apply(ir, argument, fn_type.parameter, fn_type.result)
        else:
            result = self._apply(self._eval(ir, None), None, None, fn_type.result)
        outputs = []
        self._outputs(fn_type.result, result, "", outputs)
        ports, dependencies = [], []
        for port, deps in outputs:
            if port.placement == "unplaced" and not any(
                    self.inputs[i].placement == "CLIENTS" for i, _ in deps):
                continue  # only federated outputs, or unplaced ones fed by the clients
            ports.append(port)
            by_input = {}
            for index, path in deps:
                by_input.setdefault(index, set()).add(path)
            for index in sorted(by_input):
                source = self.inputs[index]
                paths = tuple(sorted(by_input[index], key=lambda p: (len(p), p)))
                dependencies.append(Dependency(port.path, port.placement, source.path,
                                               source.placement, paths))
        return AuditReport(self.name, self.inputs, ports, dependencies)

    # Inputs and outputs ---------------------------------------------------------------------

    def _input(self, type_, path, top=True):
        """The abstract value of the parameter (or its part at `path`), registering an input
        for each federated leaf and each unplaced tensor or sequence."""
        if isinstance(type_, core.FederatedType):
            placement = "CLIENTS" if type_.placement is CLIENTS else "SERVER"
            return _spread(self._source(path, placement, type_), type_.member)
        if isinstance(type_, core.StructType):
            parts = []
            for index, (name, element) in enumerate(type_.items()):
                if top and name:
                    inner = name  # a struct parameter's elements go by their names
                else:
                    inner = f"{path}.{name}" if name else f"{path}[{index}]"
                parts.append(self._input(element, inner, False))
            return tuple(parts)
        if isinstance(type_, core.FunctionType):
            return _Opaque(f"call of {path}", _EMPTY)
        return self._source(path, "unplaced", type_)

    def _source(self, path, placement, type_):
        self.inputs.append(Port(path, placement, type_))
        return frozenset({(len(self.inputs) - 1, ())})

    def _outputs(self, type_, value, path, out):
        if isinstance(type_, core.FederatedType):
            placement = "CLIENTS" if type_.placement is CLIENTS else "SERVER"
            out.append((Port(path or "result", placement, type_), self._collapse(value)))
        elif isinstance(type_, core.StructType):
            for index, (name, element) in enumerate(type_.items()):
                inner = (f"{path}.{name}" if path else name) if name else f"{path}[{index}]"
                part = value[index] if isinstance(value, tuple) else value
                self._outputs(element, part, inner, out)
        else:
            out.append((Port(path or "result", "unplaced", type_), self._collapse(value)))

    # Evaluation -------------------------------------------------------------------------

    def _eval(self, node, scope):
        if isinstance(node, nodes.Reference):
            value = None if scope is None else scope.lookup(node.name)
            return _spread(_EMPTY, node.type_signature) if value is None else value
        if isinstance(node, nodes.Selection):
            source = self._eval(node.source, scope)
            if isinstance(source, tuple):
                return source[node.index]
            return _spread(self._collapse(source), node.type_signature)
        if isinstance(node, nodes.Struct):
            return tuple(self._eval(element, scope) for _, element in node.elements)
        if isinstance(node, nodes.Block):
            inner = _Scope({}, scope)
            for name, value in node.locals:
                inner.names[name] = self._eval(value, inner)
            return self._eval(node.result, inner)
        if isinstance(node, nodes.Lambda):
            return _Closure(node, scope)
        if isinstance(node, nodes.Call):
            function = self._eval(node.function, scope)
            if node.argument is None:
                return self._apply(function, None, None, node.type_signature)
            argument = self._eval(node.argument, scope)
            return self._apply(function, argument, node.argument.type_signature,
                               node.type_signature)
        if isinstance(node, (nodes.Intrinsic, nodes.TFLeaf)):
            return node
        return _EMPTY  # literals, placements

    def _apply(self, function, argument, argument_type, result_type):
        if isinstance(function, _Closure):
            fn = function.fn
            if fn.parameter_name is None:
                return self._eval(fn.body, function.scope)
            return self._eval(fn.body, _Scope({fn.parameter_name: argument}, function.scope))
        if isinstance(function, nodes.Intrinsic):
            return self._intrinsic(function.uri, argument, argument_type, result_type)
        deps = _EMPTY if argument is None else self._collapse(argument)
        if isinstance(function, nodes.TFLeaf):
            value = _spread(deps, result_type)
            if is_noise(function) or function.name in self.noise_names or \
                    id(function.computation) in self.noise_functions:
                value = _with_step(value, (NOISE_STEP, function.name))
            return value
        if isinstance(function, _Opaque):
            value = _spread(deps | function.captured, result_type)
            return value if function.label is None else \
                _with_step(value, (OPAQUE, function.label))
        return _spread(deps | self._collapse(function), result_type)

    def _fixpoint(self, start, step):
        value = start
        for _ in range(_MAX_ROUNDS):
            joined = _join(value, step(value))
            if joined == value:
                break
            value = joined
        return value

    def _intrinsic(self, uri, argument, argument_type, result_type):
        if uri in _IDENTITY:
            return argument
        if uri in _SIMPLE_AGGREGATIONS:
            return _with_step(argument, (AGGREGATION, uri))
        if uri in ("federated_weighted_mean", "federated_secure_sum",
                   "federated_secure_sum_bitwidth"):  # <value, weight or bound>
            value = _with_deps(argument[0], self._collapse(argument[1]))
            return _with_step(value, (AGGREGATION, uri))
        if uri in ("federated_eval_at_server", "federated_eval_at_clients"):
            return self._apply(argument, None, None, _member(result_type))
        if uri in ("federated_map", "federated_apply"):
            fn_type = argument_type[0]
            return self._apply(argument[0], argument[1], _member(argument_type[1]),
                               fn_type.result)
        if uri == "federated_aggregate":
            value, zero, accumulate, merge, report = argument
            types = list(argument_type)
            member = _with_step(value, (AGGREGATION, uri))
            acc_type = core.StructType([types[1], _member(types[0])])
            acc = self._fixpoint(zero, lambda a: self._apply(
                accumulate, (a, member), acc_type, types[2].result))
            pair_type = core.StructType([types[1], types[1]])
            acc = self._fixpoint(acc, lambda a: self._apply(merge, (a, a), pair_type,
                                                            types[3].result))
            return self._apply(report, acc, types[1], types[4].result)
        if uri == "sequence_map":
            fn_type = argument_type[0]
            element = _spread(self._collapse(argument[1]), fn_type.parameter)
            return self._collapse(self._apply(argument[0], element, fn_type.parameter,
                                              fn_type.result))
        if uri == "sequence_reduce":
            sequence, zero, op = argument
            op_type = argument_type[2]
            element = _spread(self._collapse(sequence), _element(op_type.parameter, 1))
            return self._fixpoint(zero, lambda a: self._apply(
                op, (a, element), op_type.parameter, op_type.result))
        if uri == "sequence_sum":
            return _spread(self._collapse(argument), result_type)
        # An intrinsic this audit does not know: everything it gets reaches its result, and
        # it shows on the path by name (not counted as an aggregation).
        deps = _EMPTY if argument is None else self._collapse(argument)
        return _with_step(_spread(deps, result_type), (UNKNOWN_INTRINSIC, uri))

    def _collapse(self, value):
        """Everything `value` depends on, in one set."""
        if isinstance(value, frozenset):
            return value
        if isinstance(value, tuple):
            out = _EMPTY
            for part in value:
                out = out | self._collapse(part)
            return out
        if isinstance(value, _Opaque):
            return value.captured
        if isinstance(value, _Closure):  # what its body can read from its scope
            key = id(value.fn)
            if key not in self._free:
                self._free[key] = (value.fn, analysis.free_names(value.fn))
            out = _EMPTY
            for name in self._free[key][1]:
                found = None if value.scope is None else value.scope.lookup(name)
                if found is not None:
                    out = out | self._collapse(found)
            return out
        return _EMPTY  # TF leaves and intrinsics capture nothing


def _collapse(value):
    """`_Audit._collapse` for values that hold no closures (joins of data)."""
    if isinstance(value, frozenset):
        return value
    if isinstance(value, tuple):
        out = _EMPTY
        for part in value:
            out = out | _collapse(part)
        return out
    if isinstance(value, _Opaque):
        return value.captured
    return _EMPTY


audit.mark_noise = mark_noise
audit.AuditReport = AuditReport
