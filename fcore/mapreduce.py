"""MapReduce form: a federated round as non-federated parts, as TFF's `tff.backends.mapreduce`.

A computation of type `(<S@SERVER,{D}@CLIENTS> -> <S@SERVER,O@SERVER>)` whose round is one
broadcast, client work, and one aggregation step is compiled to:

    prepare        (S -> B)                     what the server broadcasts
    work           (<D,B> -> <aggregated=A,secure_sum=V,secure_sum_bitwidth=W>)
                                                one client's contributions: every client-side
                                                TF leaf and IR step, with no placements
    zero           ( -> U)                      the aggregations, as one federated_aggregate
    accumulate     (<U,A> -> U)                 (sums, means, weighted means, minima, maxima
    merge          (<U,U> -> U)                  and federated_aggregate, each a member of U)
    report         (U -> R)
    secure_sum_max_input, secure_sum_bitwidth
                   ( -> bounds)                 the bounds of the secure sums of V and W
    update         (<S,<aggregated=R,secure_sum=V,secure_sum_bitwidth=W>> -> <S,O>)
                                                the server's new state and output

`get_map_reduce_form_for_computation(comp)` compiles the IR (general rewriting: inlining,
splitting the round into phases, removing placements); `get_computation_for_map_reduce_form`
composes a form back into a computation with the same type signature and results. A
computation that does not fit raises a `ValueError` naming the part that does not.
"""

from __future__ import annotations

import itertools

import numpy as np

from fcore import structure
from fcore.computation import Computation
from fcore.intrinsics.definitions import get, lookup
from fcore.ir import analysis, nodes
from fcore.types import core

_SECURE = ("secure_sum", "secure_sum_bitwidth")
PARTS = ("prepare", "work", "zero", "accumulate", "merge", "report", "secure_sum_max_input",
         "secure_sum_bitwidth", "update")


class MapReduceForm:
    """The parts of a federated round (see the module doc); each is an `fcore.Computation`."""

    def __init__(self, type_signature, prepare, work, zero, accumulate, merge, report,
                 secure_sum_max_input, secure_sum_bitwidth, update):
        self.type_signature = type_signature
        self.prepare, self.work = prepare, work
        self.zero, self.accumulate, self.merge, self.report = zero, accumulate, merge, report
        self.secure_sum_max_input = secure_sum_max_input
        self.secure_sum_bitwidth = secure_sum_bitwidth
        self.update = update

    def parts(self):
        return {name: getattr(self, name) for name in PARTS}

    def __str__(self):
        lines = [f"MapReduceForm of {self.type_signature}"]
        for name, part in self.parts().items():
            lines.append(f"{name}: {part.type_signature}")
            lines.append("  " + part.to_text(formatted=True).replace("\n", "\n  "))
        return "\n".join(lines)

    def __repr__(self):
        return f"<MapReduceForm {self.type_signature}>"


def get_map_reduce_form_for_computation(comp) -> MapReduceForm:
    """The MapReduce form of `comp`, of type `(<S@SERVER,{D}@CLIENTS> -> <S@SERVER,O@SERVER>)`.
    Raises `ValueError` naming what does not fit."""
    if not isinstance(comp, Computation):
        raise TypeError(f"Expected an fcore computation, found {type(comp).__name__}.")
    return _Compiler(comp).form()


def get_computation_for_map_reduce_form(form: MapReduceForm) -> Computation:
    """The federated computation that runs `form`'s parts: prepare at the server, broadcast,
    work at the clients, aggregate, update at the server. Same type signature and results as
    the computation the form was made from."""
    from fcore.struct import Struct
    from fcore.tracing import intrinsics as fi
    from fcore.tracing.computation import federated_computation
    from fcore.types.placements import SERVER
    parameter = form.type_signature.parameter
    result_names = form.type_signature.result.names()

    def round_(arg):
        state, data = arg[0], arg[1]
        broadcast = fi.federated_broadcast(fi.federated_map(form.prepare, state))
        contributions = fi.federated_map(form.work, fi.federated_zip((data, broadcast)))
        aggregated = fi.federated_aggregate(contributions.aggregated, form.zero(),
                                            form.accumulate, form.merge, form.report)
        def secure_sum(values, bounds, intrinsic):
            if not len(bounds.type_signature.result):  # none in this round
                return fi.federated_value(Struct([]), SERVER)
            return intrinsic(values, bounds())
        secure = [secure_sum(contributions.secure_sum, form.secure_sum_max_input,
                             fi.federated_secure_sum),
                  secure_sum(contributions.secure_sum_bitwidth, form.secure_sum_bitwidth,
                             fi.federated_secure_sum_bitwidth)]
        results = Struct([("aggregated", aggregated), ("secure_sum", secure[0]),
                          ("secure_sum_bitwidth", secure[1])])
        updated = fi.federated_map(form.update, fi.federated_zip(Struct(
            [(None, state), (None, fi.federated_zip(results))])))
        return Struct([(result_names[0], updated[0]), (result_names[1], updated[1])])
    composed = federated_computation(round_, parameter)
    # the result as the original computation returns it (its Python containers)
    return Computation(composed.ir, "map_reduce_round", form.type_signature.result)


# The compiler ---------------------------------------------------------------------------

class _Compiler:
    def __init__(self, comp):
        self.comp = comp
        self.where = f"'{comp.name}'"
        fn_type = comp.type_signature
        parameter, result = fn_type.parameter, fn_type.result
        if not (isinstance(parameter, core.StructType) and len(parameter) == 2 and
                _placed(parameter[0], "SERVER") and _clients(parameter[1])):
            raise ValueError(f"MapReduce form of {self.where}: expected a parameter "
                             f"<S@SERVER,{{D}}@CLIENTS>, found {parameter}.")
        if _mentions_clients(result):
            raise ValueError(f"MapReduce form of {self.where}: the result has client-placed "
                             f"values ({result}); only server values can be returned.")
        if not (isinstance(result, core.StructType) and len(result) == 2 and
                all(_placed(t, "SERVER") for t in result)):
            raise ValueError(f"MapReduce form of {self.where}: expected a result "
                             f"<S@SERVER,O@SERVER> (new state and server output), found "
                             f"{result}.")
        self.parameter, self.result_type = parameter, result
        self.counter = itertools.count()
        ir = analysis.uniquify(comp.ir)
        self.arg = ir.parameter_name
        self.bindings = []
        result = self._flatten(ir.body)
        self.bindings, self.result = _propagate(self.bindings, result)

    # Step 1: one flat list of bindings, lambdas called inline ----------------------------

    def _fresh(self):
        return f"_mr{next(self.counter)}"

    def _flatten(self, node):
        if isinstance(node, nodes.Block):
            for name, value in node.locals:
                self.bindings.append((name, self._flatten(value)))
            return self._flatten(node.result)
        if isinstance(node, nodes.Call):
            function = node.function
            if isinstance(function, nodes.Lambda):  # inline: names are unique
                if function.parameter_name is not None:
                    self.bindings.append((function.parameter_name,
                                          self._flatten(node.argument)))
                return self._flatten(function.body)
            argument = None if node.argument is None else self._flatten(node.argument)
            call = nodes.Call(function, argument)
            if isinstance(function, nodes.Intrinsic):
                name = self._fresh()
                self.bindings.append((name, call))
                return nodes.Reference(name, call.type_signature)
            return call
        if isinstance(node, nodes.Struct):
            return nodes.Struct([(n, self._flatten(e)) for n, e in node.elements])
        if isinstance(node, nodes.Selection):
            return nodes.Selection(self._flatten(node.source), name=node.name,
                                   index=None if node.name is not None else node.index)
        return node

    # Step 2: the phases -------------------------------------------------------------------

    def _phases(self):
        phase = {}  # name -> "const" | "server" | "client" | "aggregate" | "post"
        for name, value in self.bindings:
            deps = {phase[d] for d in analysis.free_names(value) if d in phase} - {"const"}
            if self.arg in analysis.free_names(value):
                deps |= self._parameter_phases(value)
            uri = value.function.uri if _intrinsic_call(value) else None
            aggregation = _aggregation(uri)
            if not deps and not _mentions_federated(value.type_signature) and \
                    not aggregation:
                kind = "const"  # a value of no placement: available to every part
            elif aggregation:
                client, rest = _split_aggregation(value)
                if {phase.get(d) for d in analysis.free_names(client)} - {"client", None} \
                        or not _clients(client.type_signature):
                    raise self._error(name, value, "an aggregation of values that are not "
                                      "the clients' work of this round")
                for part in rest:
                    if {phase[d] for d in analysis.free_names(part) if d in phase} - \
                            {"const"} or self.arg in analysis.free_names(part):
                        raise self._error(name, value, "an aggregation whose zero, functions "
                                          "or bounds depend on the round's values (they "
                                          "must be constants)")
                kind = "aggregate"
            elif uri == "federated_broadcast":
                if deps - {"server"}:
                    raise self._error(name, value, "a broadcast of a value computed after "
                                      "the aggregation (a second round in one call)")
                kind = "client"
            elif _at_clients(uri) or _mentions_clients(value.type_signature):
                if "post" in deps or "aggregate" in deps:
                    raise self._error(name, value, "client work that uses the result of an "
                                      "aggregation (a second round in one call)")
                kind = "client"
            else:
                if "client" in deps:
                    raise self._error(name, value, "a server value computed from client "
                                      "values without an aggregation")
                kind = "post" if deps & {"aggregate", "post"} else "server"
            phase[name] = kind
        free = analysis.free_names(self.result)
        if any(phase.get(d) == "client" for d in free) or \
                _mentions_clients(self.result.type_signature):
            raise ValueError(f"MapReduce form of {self.where}: the result has client-placed "
                             f"values ({self.result.type_signature}); only server values "
                             f"can be returned.")
        return phase

    def _parameter_phases(self, value):
        kinds = set()
        for index in _parameter_uses(value, self.arg):
            kinds.add("server" if index == 0 else "client")
        return kinds

    def _error(self, name, value, what):
        text = str(value)
        text = text if len(text) <= 120 else text[:117] + "..."
        return ValueError(f"MapReduce form of {self.where}: {what}: {name}={text}.")

    # Step 3: the parts --------------------------------------------------------------------

    def form(self):
        phase = self._phases()
        state_type = self.parameter[0].member
        data_type = self.parameter[1].member
        broadcasts = [(n, v) for n, v in self.bindings
                      if _intrinsic_call(v) and v.function.uri == "federated_broadcast"]
        aggregations = [(n, v) for n, v in self.bindings if phase[n] == "aggregate"]
        const = [(n, v) for n, v in self.bindings if phase[n] == "const"]
        server = [(n, v) for n, v in self.bindings if phase[n] == "server"]
        client = [(n, v) for n, v in self.bindings if phase[n] == "client"]
        post = [(n, v) for n, v in self.bindings if phase[n] == "post"]

        # prepare: (S -> B), the broadcast values
        state = nodes.Reference("state", state_type)
        env = {self.arg: ("parameter", state, None)}
        locals_ = self._unplaced(const + server, env)
        broadcast_value = nodes.Struct([(None, _unplace(v.argument, env)) for _, v in broadcasts])
        prepare = _computation("prepare", "state", state_type, locals_, broadcast_value)

        # work: (<D,B> -> <aggregated=...,secure_sum=...,secure_sum_bitwidth=...>)
        work_type = core.StructType([("data", data_type),
                                     ("broadcast", broadcast_value.type_signature)])
        arg = nodes.Reference("arg", work_type)
        env = {self.arg: ("parameter", None, nodes.Selection(arg, name="data"))}
        for index, (name, _) in enumerate(broadcasts):
            env[name] = ("value", nodes.Selection(nodes.Selection(arg, name="broadcast"),
                                                  index=index))
        locals_ = self._unplaced(const + [(n, v) for n, v in client
                                          if not (_intrinsic_call(v) and
                                                  v.function.uri == "federated_broadcast")],
                                 env)
        plain, secure = [], {"secure_sum": [], "secure_sum_bitwidth": []}
        for name, value in aggregations:
            uri = value.function.uri
            operand = _unplace(_split_aggregation(value)[0], env)
            if uri == "federated_secure_sum":
                secure["secure_sum"].append((name, value, operand))
            elif uri == "federated_secure_sum_bitwidth":
                secure["secure_sum_bitwidth"].append((name, value, operand))
            else:
                plain.append((name, value, operand))
        outputs = nodes.Struct(
            [("aggregated", nodes.Struct([(None, o) for _, _, o in plain]))] +
            [(key, nodes.Struct([(None, o) for _, _, o in secure[key]])) for key in _SECURE])
        work = _computation("work", "arg", work_type, locals_, outputs)

        # the aggregations, as one federated_aggregate
        parts = [_aggregation_parts(value, operand.type_signature, self._error, name)
                 for name, value, operand in plain]
        constants = {}
        constants_env = {}
        for name, value in const:  # the aggregations' constant arguments, substituted
            constants[name] = _unplace(value, constants_env)
            constants_env[name] = ("value", constants[name])
        parts = [tuple(_unplace(p, constants_env) for p in part) for part in parts]
        zero, accumulate, merge, report = _combined(parts, outputs.type_signature[0])
        bounds = {key: _bounds([(n, v, _unplace(v.argument.elements[1][1], constants_env))
                                for n, v, _ in secure[key]]) for key in _SECURE}

        # update: (<S,<aggregated=R,...>> -> <S,O>)
        results_type = core.StructType(
            [("aggregated", report.type_signature.result)] +
            [(key, core.StructType([(None, v.type_signature.member)
                                    for _, v, _ in secure[key]])) for key in _SECURE])
        update_type = core.StructType([("state", state_type), ("results", results_type)])
        arg = nodes.Reference("arg", update_type)
        env = {self.arg: ("parameter", nodes.Selection(arg, name="state"), None)}
        results = nodes.Selection(arg, name="results")
        for index, (name, _, _) in enumerate(plain):
            env[name] = ("value", nodes.Selection(nodes.Selection(results, name="aggregated"),
                                                  index=index))
        for key in _SECURE:
            for index, (name, _, _) in enumerate(secure[key]):
                env[name] = ("value", nodes.Selection(nodes.Selection(results, name=key),
                                                      index=index))
        locals_ = self._unplaced(const + server + post, env)
        update = _computation("update", "arg", update_type, locals_,
                              _unplace(self.result, env))
        return MapReduceForm(self.comp.type_signature, prepare, work, zero, accumulate, merge,
                             report, bounds["secure_sum"], bounds["secure_sum_bitwidth"],
                             update)

    def _unplaced(self, bindings, env):
        locals_ = []
        for name, value in bindings:
            unplaced = _unplace(value, env)
            locals_.append((name, unplaced))
            env[name] = ("value", nodes.Reference(name, unplaced.type_signature))
        return locals_


def _computation(name, parameter_name, parameter_type, locals_, result):
    body = nodes.Block(locals_, result) if locals_ else result
    return Computation(nodes.Lambda(parameter_name, parameter_type, body), name)


# Removing placements --------------------------------------------------------------------

def _unplace(node, env):
    """`node` (a value of the round) as a non-federated expression: placed values become
    their members, intrinsics that only move or map values become plain calls and structs."""
    if isinstance(node, nodes.Reference):
        entry = env.get(node.name)
        if entry is None:
            raise ValueError(f"MapReduce form: {node.name} is not available in this part of "
                             f"the round.")
        return entry[1]
    if isinstance(node, nodes.Selection):
        source = node.source
        if isinstance(source, nodes.Reference) and source.name in env and \
                env[source.name][0] == "parameter":
            server, client = env[source.name][1], env[source.name][2]
            chosen = server if node.index == 0 else client
            if chosen is None:
                raise ValueError(f"MapReduce form: {node} is not available in this part.")
            return chosen
        return nodes.Selection(_unplace(source, env), name=node.name,
                               index=None if node.name is not None else node.index)
    if isinstance(node, nodes.Struct):
        return nodes.Struct([(n, _unplace(e, env)) for n, e in node.elements])
    if _intrinsic_call(node):
        uri = node.function.uri
        argument = None if node.argument is None else _unplace(node.argument, env)
        if uri in ("federated_map", "federated_apply"):
            fn, value = _pair(argument)
            return nodes.Call(fn, value)
        if uri in ("federated_zip_at_clients", "federated_zip_at_server",
                   "federated_value_at_clients", "federated_value_at_server",
                   "federated_broadcast"):
            return argument
        if uri in ("federated_eval_at_clients", "federated_eval_at_server"):
            return nodes.Call(argument)
        if uri.startswith("sequence_"):
            return nodes.Call(nodes.Intrinsic(uri, lookup(uri).function_type(
                argument.type_signature)), argument)
        raise ValueError(f"MapReduce form: {uri} cannot run inside a non-federated part.")
    if isinstance(node, nodes.Call):
        function = _unplace(node.function, env)
        return nodes.Call(function, None if node.argument is None else
                          _unplace(node.argument, env))
    if isinstance(node, nodes.Lambda):
        free = analysis.free_names(node) & set(env)
        if free:
            raise ValueError(f"MapReduce form: the function {node} uses values of the round "
                             f"({', '.join(sorted(free))}); only closed functions can move "
                             f"between parts.")
        return node
    return node


def _pair(argument):
    if isinstance(argument, nodes.Struct):
        return argument.elements[0][1], argument.elements[1][1]
    return nodes.Selection(argument, index=0), nodes.Selection(argument, index=1)


# Aggregations as federated_aggregate parts ---------------------------------------------

def _aggregation_parts(value, operand_type, error, name):
    """`(zero, accumulate, merge, report)` of one aggregation: IR functions over its
    accumulator (TF leaves made here for sums, means, minima and maxima)."""
    uri = value.function.uri
    if uri == "federated_aggregate":
        elements = [e for _, e in value.argument.elements]
        return elements[1], elements[2], elements[3], elements[4]
    member = operand_type if uri != "federated_weighted_mean" else operand_type[0]
    for leaf in structure.type_leaves(member):
        if not leaf.is_fully_defined():
            raise error(name, value, f"an aggregation of {member}: its shape must be known "
                        f"to make a zero")
    import tensorflow as tf
    from fcore.tracing.computation import tf_computation
    if uri in ("federated_sum", "federated_min", "federated_max"):
        def initial(t):
            if uri == "federated_sum":
                return tf.zeros(t.shape, t.dtype)
            info = np.finfo(t.dtype) if t.dtype.kind == "f" else np.iinfo(t.dtype)
            fill = (np.inf if uri == "federated_min" else -np.inf) if t.dtype.kind == "f" \
                else (info.max if uri == "federated_min" else info.min)
            return tf.fill(t.shape, tf.constant(fill, t.dtype))
        combine = {"federated_sum": tf.add, "federated_min": tf.minimum,
                   "federated_max": tf.maximum}[uri]
        zero = tf_computation(lambda: structure.map_structure(initial, member))
        fold = tf_computation(lambda a, b: _zip_map(combine, a, b), member, member)
        report = tf_computation(lambda a: a, member)
        return zero.ir, fold.ir, fold.ir, report.ir
    # means: <total (float64), weight (float64)>
    wide = core.StructType([("total", _widened(member)), ("weight", np.float64)])

    def zero_fn():
        return {"total": structure.map_structure(lambda t: tf.zeros(t.shape, tf.float64), member),
                "weight": tf.constant(0.0, tf.float64)}

    def accumulate_fn(acc, x):
        if uri == "federated_weighted_mean":
            x, w = x[0], tf.cast(x[1], tf.float64)
            use = tf.not_equal(w, 0.0)  # a member of weight zero is left out
            added = _zip_map(lambda a, v: tf.where(use, a + tf.cast(v, tf.float64) * w, a),
                             acc["total"], x)
            return {"total": added, "weight": acc["weight"] + w}
        added = _zip_map(lambda a, v: a + tf.cast(v, tf.float64), acc["total"], x)
        return {"total": added, "weight": acc["weight"] + 1.0}

    def merge_fn(a, b):
        return {"total": _zip_map(tf.add, a["total"], b["total"]),
                "weight": a["weight"] + b["weight"]}

    def report_fn(acc):
        return _zip_map(lambda total, t: tf.cast(total / acc["weight"], t),
                        acc["total"], structure.map_structure(lambda t: t.dtype, member))
    zero = tf_computation(zero_fn)
    accumulate = tf_computation(accumulate_fn, wide, operand_type)
    merge = tf_computation(merge_fn, wide, wide)
    report = tf_computation(report_fn, wide)
    return zero.ir, accumulate.ir, merge.ir, report.ir


def _widened(type_):
    if isinstance(type_, core.StructType):
        return core.StructType([(n, _widened(t)) for n, t in type_.items()])
    return core.TensorType(np.float64, type_.shape)


def _zip_map(fn, a, b):
    from fcore.struct import Struct, python_items
    items = python_items(a)
    if items is None:
        return fn(a, b)
    b_values = [v for _, v in python_items(b)[0]]
    return Struct([(n, _zip_map(fn, v, w)) for (n, v), w in zip(items[0], b_values)])


def _combined(parts, operands_type):
    """One `(zero, accumulate, merge, report)` over the struct of every aggregation's
    accumulator, from each aggregation's parts."""
    zeros = nodes.Struct([(None, nodes.Call(z) if isinstance(
        z.type_signature, core.FunctionType) else z) for z, _, _, _ in parts])
    zero = Computation(nodes.Lambda(None, None, zeros), "zero")
    acc_type = zeros.type_signature
    a = nodes.Reference("arg", core.StructType([(None, acc_type), (None, operands_type)]))
    accumulate = Computation(nodes.Lambda("arg", a.type_signature, nodes.Struct([
        (None, nodes.Call(fold, nodes.Struct([
            (None, nodes.Selection(nodes.Selection(a, index=0), index=i)),
            (None, nodes.Selection(nodes.Selection(a, index=1), index=i))])))
        for i, (_, fold, _, _) in enumerate(parts)])), "accumulate")
    m = nodes.Reference("arg", core.StructType([(None, acc_type), (None, acc_type)]))
    merge = Computation(nodes.Lambda("arg", m.type_signature, nodes.Struct([
        (None, nodes.Call(combine, nodes.Struct([
            (None, nodes.Selection(nodes.Selection(m, index=0), index=i)),
            (None, nodes.Selection(nodes.Selection(m, index=1), index=i))])))
        for i, (_, _, combine, _) in enumerate(parts)])), "merge")
    r = nodes.Reference("arg", acc_type)
    report = Computation(nodes.Lambda("arg", acc_type, nodes.Struct([
        (None, nodes.Call(finish, nodes.Selection(r, index=i)))
        for i, (_, _, _, finish) in enumerate(parts)])), "report")
    return zero, accumulate, merge, report


def _bounds(secure):
    """`( -> bounds)`: the constant bounds of the secure sums (their second arguments)."""
    values = nodes.Struct([(None, bound) for _, _, bound in secure])
    return Computation(nodes.Lambda(None, None, values), "bounds")


# Helpers --------------------------------------------------------------------------------

def _intrinsic_call(node):
    return isinstance(node, nodes.Call) and isinstance(node.function, nodes.Intrinsic)


def _aggregation(uri):
    """Whether `uri` (None for a call of no intrinsic) names an aggregation."""
    definition = None if uri is None else get(uri)
    return definition is not None and definition.aggregation


def _at_clients(uri):
    """Whether `uri` (None for a call of no intrinsic) gives a value placed at CLIENTS."""
    definition = None if uri is None else get(uri)
    return definition is not None and definition.result_placement == "CLIENTS"


def _split_aggregation(value):
    """The client operand of an aggregation call and its other (server) arguments."""
    argument = value.argument
    if lookup(value.function.uri).whole_operand:  # (a weighted mean's is <value,weight>)
        return argument, []
    elements = [e for _, e in argument.elements] if isinstance(argument, nodes.Struct) else \
        [nodes.Selection(argument, index=i) for i in range(len(argument.type_signature))]
    return elements[0], elements[1:]


def _propagate(bindings, result):
    """Bindings and result with plumbing (references, selections, structs, literals, closed
    functions) substituted into its uses, and selections from structs simplified, so that
    only computing steps (calls) remain as bindings."""
    subst, kept = {}, []
    for name, value in bindings:
        value = analysis.substitute(value, subst)
        if _plumbing(value):
            subst[name] = value
        else:
            kept.append((name, value))
    return kept, analysis.substitute(result, subst)


def _plumbing(node):
    if isinstance(node, (nodes.Reference, nodes.Literal, nodes.TFLeaf, nodes.Placement,
                         nodes.Intrinsic)):
        return True
    if isinstance(node, nodes.Lambda):
        return True
    if isinstance(node, nodes.Selection):
        return _plumbing(node.source)
    if isinstance(node, nodes.Struct):
        return all(_plumbing(e) for _, e in node.elements)
    return False


def _mentions_federated(type_):
    return structure.mentions(type_, structure.is_federated)


def _placed(type_, placement):
    return isinstance(type_, core.FederatedType) and type_.placement.name == placement


def _clients(type_):
    if isinstance(type_, core.StructType):  # a weighted mean's <value, weight>
        return all(_clients(t) for t in type_)
    return structure.is_client_list(type_)


def _mentions_clients(type_):
    return structure.contains(type_, lambda t: _placed(t, "CLIENTS"))


def _parameter_uses(node, name):
    """The indices `i` of `name[i]` selections in `node` (a bare use counts as both)."""
    uses = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, nodes.Selection) and isinstance(current.source, nodes.Reference) \
                and current.source.name == name:
            uses.add(current.index)
            continue
        if isinstance(current, nodes.Reference) and current.name == name:
            uses.update({0, 1})
        stack.extend(current.children())
    return uses
