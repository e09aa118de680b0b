"""The fast local executor: the reference interpreter, with client work streamed.

In each block, the bindings computed per client (`federated_map`, `federated_zip` at
CLIENTS, `federated_eval` at CLIENTS) and the aggregations over them are scheduled into
passes over the clients. In one pass each client's work runs once, its values feed every
aggregation's accumulator, and only client values that something else needs as a whole are
kept. Aggregating N clients therefore holds one running value per aggregation, not N client
values (a FedAvg round keeps one model delta, not one per client)."""

from __future__ import annotations

from fcore import structure
from fcore.execution import accumulators, intrinsic_impls as impls
from fcore.execution.context import register_executor
from fcore.execution.reference import Environment, Interpreter
from fcore.intrinsics import definitions
from fcore.ir import analysis, nodes
from fcore.types import core



def _intrinsic_call(node):
    return isinstance(node, nodes.Call) and isinstance(node.function, nodes.Intrinsic)


def _lifted(uri):
    """Whether calls of `uri` are scheduled into passes: the intrinsics computed per client
    and the aggregations that stream (those with an "accumulator" rule)."""
    definition = definitions.get(uri)
    return definition is not None and (definition.per_client or
                                       definition.has_rule("accumulator"))


def _per_client(uri):
    definition = definitions.get(uri)
    return definition is not None and definition.per_client


def _streams(uri):
    definition = definitions.get(uri)
    return definition is not None and definition.has_rule("accumulator")


class StreamingInterpreter(Interpreter):
    """An `Interpreter` whose blocks stream their client work (see the module doc)."""

    lower = True  # compile passes of alike clients into one graph (see lowering.py)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._counter = 0

    def _fresh(self):
        self._counter += 1
        return f"_stream{self._counter}"

    def _call(self, node, env):
        if _intrinsic_call(node) and _lifted(node.function.uri):
            return self._stream(((), node), env)
        return super()._call(node, env)

    def _block(self, node, env):
        return self._stream((node.locals, node.result), env)

    # Scheduling ----------------------------------------------------------------------------

    def _stream(self, block, env):
        locals_, result = block
        taken = {name for name, _ in locals_} | analysis.free_names(
            nodes.Block(locals_, result) if locals_ else result)

        def fresh():  # a name the block does not use (programs built elsewhere have some)
            name = self._fresh()
            while name in taken:
                name = self._fresh()
            return name
        lifted = {uri for uri in definitions.INTRINSICS if _lifted(uri)}
        bindings, result = analysis.lift_calls(locals_, result, lifted, fresh)
        result_name = fresh()
        bindings.append((result_name, result))
        values = {}          # name -> value (server values, materialised client lists)
        per_client = {}      # name -> node, computed per client in passes
        waiting = list(bindings)
        while waiting:
            registered_aggregates, materialise, progress = [], set(), False
            for name, node in list(waiting):
                deps = analysis.free_names(node) & {n for n, _ in bindings}
                if not deps <= set(values) | set(per_client):
                    continue
                if self._is_per_client(node) and _by_member(node.argument, per_client):
                    per_client[name] = node
                elif self._is_streamed_aggregate(node, per_client):
                    registered_aggregates.append((name, node))
                elif deps & set(per_client) - set(values):
                    materialise |= deps & set(per_client) - set(values)
                    continue
                else:
                    values[name] = self._evaluate_binding(node, self._env(env, values))
                waiting.remove((name, node))
                progress = True
            if registered_aggregates or materialise:
                materialise |= self._needed_later(waiting, per_client, values,
                                                  registered_aggregates, materialise)
                values.update(self._pass(env, values, per_client, registered_aggregates,
                                         materialise))
            elif not progress:
                raise RuntimeError(f"streaming executor: cannot schedule {waiting[0][0]}")
        return values[result_name]

    def _needed_later(self, waiting, per_client, values, aggregates, materialise):
        """The per-client values a pass computes that a later step uses: they are kept, so
        that each client's work runs once (the same values, even with randomness in it)."""
        computed = _needed(per_client, [name for _, n in aggregates for name in
                                        analysis.free_names(_client_part(n)) & set(per_client)]
                           + sorted(materialise), stop=set(values))
        later = [node for name, node in waiting if (name, node) not in aggregates]
        later += [per_client[name] for name in per_client
                  if name not in computed and name not in values]
        used = set()
        for node in later:
            used |= analysis.free_names(node)
        return used & computed

    def prepare(self, computation):
        return unique_ir(computation)

    def run_leaf(self, leaf, argument):
        # Short sequences given as lists run unrolled, without a tf.data pipeline per call.
        return leaf.run(argument, unroll=True)

    def _evaluate_binding(self, node, env):
        if _intrinsic_call(node):  # already lifted: evaluate it as the reference does
            return Interpreter._call(self, node, env)
        return self.evaluate(node, env)

    def _env(self, env, values):
        return Environment(dict(values), env) if values else env

    def _is_per_client(self, node):
        return _intrinsic_call(node) and _per_client(node.function.uri) and \
            structure.is_client_list(node.type_signature) and self._plain_arguments(node)

    def _is_streamed_aggregate(self, node, per_client):
        if not (_intrinsic_call(node) and _streams(node.function.uri)):
            return False
        part = _client_part(node)
        return bool(analysis.free_names(part) & set(per_client)) and \
            _by_member(part, per_client)

    def _plain_arguments(self, node):
        """`{T}@SERVER` values (lists of server members) take the reference path."""
        def server_list(type_):
            return isinstance(type_, core.FederatedType) and \
                type_.placement.name == "SERVER" and not type_.all_equal
        return node.argument is None or \
            not structure.contains(node.argument.type_signature, server_list)

    # One pass over the clients -------------------------------------------------------------

    def _pass(self, env, values, per_client, aggregates, materialise):
        scope = self._env(env, values)
        once = _Once(self, scope)
        roots = [name for _, n in aggregates
                 for name in analysis.free_names(_client_part(n)) & set(per_client)]
        needed = _needed(per_client, roots + sorted(materialise), stop=set(values))
        order = [(name, per_client[name]) for name in per_client if name in needed]
        count = self._count(order, once)
        report = self.progress is not None and self.client_index is None and any(
            getattr(once(_function_of(n)), "is_client_work", False) for _, n in order
            if n.function.uri == "federated_map")
        done = [0]

        def advance(clients):
            done[0] += clients
            if report:
                self.progress(done[0], count)
        accs = [accumulators.start(node.function.uri, node.function.type_signature,
                                   [] if definitions.lookup(node.function.uri).whole_operand
                                   else [once(e) for e in _elements(node.argument)[1:]])
                for _, node in aggregates]
        kept = {name: [None] * count for name in materialise}
        remaining = range(count)
        if self.lower:
            from fcore.execution import lowering
            lowered = lowering.lower_pass(order, aggregates, materialise, once, count,
                                          self._member_of_call, _member, advance)
            if lowered is not None:
                partials, lowered_kept, remaining = lowered
                for acc, partial in zip(accs, partials):
                    acc.merge(partial)
                for name, values in lowered_kept.items():
                    for index, value in values.items():
                        kept[name][index] = value
        operands = [_client_part(node) for _, node in aggregates]
        outer = self.client_index
        for index in remaining:
            self.client_index = index
            try:
                members = {}
                for name, node in order:
                    members[name] = self._member_of_call(node, index, members, once)
                for operand, acc in zip(operands, accs):
                    acc.add(_member(operand, index, members, once))
                for name in materialise:
                    kept[name][index] = members[name]
            finally:
                self.client_index = outer
            advance(1)
        results = {name: acc.result() for (name, _), acc in zip(aggregates, accs)}
        results.update(kept)
        return results

    def _member_of_call(self, node, index, members, once):
        member = definitions.lookup(node.function.uri).rule("member")
        return member(node, index, members, once)

    def _count(self, order, once):
        counts = set()
        for _, node in order:
            for element in _federated_leaves(node.argument):
                if isinstance(element, nodes.Reference) and element.name in dict(order):
                    continue
                if structure.is_client_list(element.type_signature):
                    counts.add(len(once(element)))
        if len(counts) > 1:
            raise ValueError(f"Client-placed values with different numbers of clients: "
                             f"{sorted(counts)}.")
        if counts:
            return counts.pop()
        return self.count(f"'{self.computation_name}'")


class _Once:
    """Evaluates server-side parts of per-client calls once per pass."""

    def __init__(self, interpreter, env):
        self.interpreter, self.env, self.cache = interpreter, env, {}

    def __call__(self, node):
        key = id(node)
        if key not in self.cache:
            self.cache[key] = (node, self.interpreter.evaluate(node, self.env))
        return self.cache[key][1]


def _member(node, index, members, once):
    """The value of `node` for client `index`: its member if it is client-placed."""
    if isinstance(node, nodes.Reference) and node.name in members:
        return members[node.name]
    if isinstance(node, nodes.Struct):
        from fcore.struct import Struct
        return Struct([(name, _member(e, index, members, once)) for name, e in node.elements])
    value = once(node)
    if structure.contains(node.type_signature, structure.is_federated):
        return impls._unplace(value, node.type_signature, index)
    return value


def _by_member(node, per_client):
    """Whether `_member` can give `node`'s value client by client: per-client values appear
    in it only as references, possibly in structs (anything else that uses them, such as a
    lambda called on one, runs once their lists are materialised)."""
    if node is None:
        return True
    if isinstance(node, nodes.Reference):
        return True
    if isinstance(node, nodes.Struct):
        return all(_by_member(e, per_client) for _, e in node.elements)
    return not analysis.free_names(node) & set(per_client)


def _elements(argument):
    if isinstance(argument, nodes.Struct):
        return [e for _, e in argument.elements]
    return [argument]


def _client_part(node):
    """The client-placed operand of an aggregation call (a weighted mean's is <value, weight>,
    both per client: streamed together)."""
    if definitions.lookup(node.function.uri).whole_operand:
        return node.argument
    return _elements(node.argument)[0]


# The "member" rules of the per-client intrinsics: client `index`'s member of a call, from the
# members computed before it in the pass (`members`) and the server-side values (`once`).

def _eval_member(node, index, members, once):
    return once(node.argument)(None)


def _map_member(node, index, members, once):
    argument = _member(node.argument, index, members, once)
    return argument[0](argument[1])


def _zip_member(node, index, members, once):
    return _member(node.argument, index, members, once)  # the struct of the members


definitions.lookup("federated_eval_at_clients").def_rule("member", _eval_member)
definitions.lookup("federated_map").def_rule("member", _map_member)
definitions.lookup("federated_zip_at_clients").def_rule("member", _zip_member)


def _function_of(node):
    return _elements(node.argument)[0]


def _federated_leaves(node):
    if node is None:
        return []
    if isinstance(node, nodes.Struct):
        return [leaf for _, e in node.elements for leaf in _federated_leaves(e)]
    return [node] if isinstance(node.type_signature, core.FederatedType) else []


def _needed(per_client, roots, stop=()):
    """The per-client bindings the roots depend on, transitively (those in `stop`, already
    computed and kept, are not computed again)."""
    needed, stack = set(), list(roots)
    while stack:
        name = stack.pop()
        if name in needed or name not in per_client or name in stop:
            continue
        needed.add(name)
        stack.extend(analysis.free_names(per_client[name]) & set(per_client))
    return needed


def unique_ir(computation):
    """The computation's IR with unique binder names (`analysis.uniquify`: streamed blocks
    keep their locals in one flat scope, where a rebound or shadowed name would otherwise
    change what another binding sees) and the lambdas it calls inlined
    (`analysis.inline_lambdas`: a nested computation's client work joins the caller's pass).
    Kept on the computation, so it lives as long as the computation does."""
    entry = getattr(computation, "_unique_ir", None)
    if entry is None or entry[0] is not computation.ir:
        entry = (computation.ir, analysis.inline_lambdas(analysis.uniquify(computation.ir)))
        computation._unique_ir = entry
    return entry[1]


def run(computation, argument, num_clients, context):
    interpreter = StreamingInterpreter(num_clients, computation.name, context.progress)
    return interpreter.run(computation, argument)


register_executor("fast", run)
