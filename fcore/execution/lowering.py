"""Compiling a round's client work into one TensorFlow graph per group of alike clients.

When a pass over the clients is one TF leaf mapped over the clients (after structural zips),
followed by steps on its outputs (selections, zips, lambdas, further TF leaves on tensors)
and aggregations with an "in_graph" rule (all but the sequence ones), the fast executor
runs each group of clients whose data have the same shapes in a single `tf.function`
(XLA-compiled where XLA accepts it): a loop over the group's clients calls the leaf's
unrolled variant and accumulates the aggregations in the graph. Per-client Python work then
shrinks to building the group's stacked inputs. Anything else takes the per-client path.

The leaf's flat argument has three kinds of positions: its sequence (the client's batches,
stacked across the group batch by batch), values equal at every client (broadcasts: the same
object at every client, passed to the loop once), and per-client tensors (a client's own
array, or a struct of them: stacked across the group into one `[clients, ...]` array per
position, grouped by shape and dtype, not by identity). Per-client values from outside the
loop that the steps after the leaf or the aggregations take (a client's weight from the
argument) are stacked the same way.

Clients left over, whose sequences differ in their number of batches, run in one loop over
the leaf's looped variant, traced once for any number (`run_looped`, at least MIN_GROUP of
them), and the rest of unequal shapes in one plain graph of unrolled variants
(`run_ragged`)."""

from __future__ import annotations

import functools
import threading
from types import SimpleNamespace

import numpy as np

from fcore import structure
from fcore.execution import accumulators, padding
from fcore.execution.cache import LRU
from fcore.execution.errors import ExecutionError
from fcore.execution.reference import Environment, Interpreter
from fcore.intrinsics.definitions import lookup
from fcore.ir import analysis, nodes
from fcore.struct import Struct
from fcore.tracing import tf_function as tff
from fcore.types import core

_FALLBACK_LOCK = threading.Lock()
CACHE_SIZE = 16  # compiled client loops kept per TF leaf (least recently used dropped)


def _cache_of(leaf):
    """The compiled client loops of `leaf`, kept on the leaf itself: they live as long as
    the computation that holds the leaf (a dropped process frees its graphs and model)."""
    cache = getattr(leaf, "_lowered", None)
    if cache is None:
        cache = leaf._lowered = LRU(CACHE_SIZE)
    return cache


def compiled_loops(leaf):
    """The compiled client loops kept for `leaf` (for tests and the soak benchmark)."""
    return list(getattr(leaf, "_lowered", {}).values())


class _NotLowerable(Exception):
    pass


MIN_GROUP = 8  # smaller groups of alike clients are not worth a compilation


def lower_pass(order, aggregates, materialise, once, count, member_of_call, member, advance):
    """Runs the pass's groups of at least MIN_GROUP alike clients compiled; returns
    `(partial accumulators, {kept name: {client index: value}}, remaining client indices)`
    for the per-client path to finish, or None when the pass does not have the shape this
    module compiles."""
    try:
        plan = _Plan(order, aggregates, materialise, once)
    except _NotLowerable:
        return None
    rows = []  # per client: the leaf's flat argument
    for index in range(count):
        members = {}
        for name, node in plan.pre:
            members[name] = member_of_call(node, index, members, once)
        argument = member(plan.leaf_argument, index, members, once)
        row = list(tff._flatten(plan.leaf.parameter_type, argument))
        if plan.sequence is not None:  # a short finite dataset as its elements (read once)
            row[plan.sequence] = tff._materialized(row[plan.sequence],
                                                   plan.param_leaves[plan.sequence])
        rows.append(row + plan.client_inputs(index, members, once, member))
    plan.classify(rows)
    groups = {}
    for index, row in enumerate(rows):
        groups.setdefault(plan.group_key(row), []).append(index)
    groups = plan.merged(groups, rows)
    large = {key: indices for key, indices in groups.items()
             if key is not None and len(indices) >= MIN_GROUP}
    accs, kept, remaining = plan.run(large, rows, count, advance)
    if remaining and plan.sequence is not None:
        results = run_looped(plan, remaining, rows)
        if results is not None and _merged(accs, results[0]):
            ran = results[2]
            for name, values in results[1].items():
                kept[name].update(zip(ran, values))
            advance(len(ran))
            done = set(ran)
            remaining = [i for i in remaining if i not in done]
    if len(remaining) >= 2 and plan.sequence is not None:
        results = run_ragged(plan, remaining, rows)
        if results is not None and _merged(accs, results[0]):
            kept_rows = results[1]
            for name, values in kept_rows.items():
                kept[name].update(zip(remaining, values))
            advance(len(remaining))
            remaining = []
    if len(remaining) == count:
        return None
    return accs, kept, remaining


class _Plan:
    def __init__(self, order, aggregates, materialise, once):
        names = [name for name, _ in order]
        leaves = [(i, n) for i, (name, n) in enumerate(order)
                  if n.function.uri == "federated_map" and isinstance(n.argument, nodes.Struct)
                  and isinstance(n.argument.elements[0][1], nodes.TFLeaf)]
        if not leaves or any(not lookup(n.function.uri).has_rule("in_graph")
                             for _, n in aggregates):
            raise _NotLowerable()
        position, leaf_node = leaves[0]
        self.leaf_name = names[position]
        self.leaf = leaf_node.argument.elements[0][1].computation
        if not hasattr(self.leaf, "_unrolled_for") or self.leaf._unrolled is None:
            raise _NotLowerable()
        self.leaf_argument = leaf_node.argument.elements[1][1]
        self.pre = order[:position]
        self.post = order[position + 1:]
        local = {self.leaf_name} | {name for name, _ in self.post}
        # values equal at every client (broadcasts) that steps after the leaf use: inputs of
        # the compiled loop, like the leaf's own non-sequence inputs
        self.extras = {}
        # per-client values from outside the loop that the steps after the leaf and the
        # aggregations use (a client's weight from the argument, a value a step before the
        # leaf computed): `(key in the loop's members, node)`, stacked across the clients
        self.inputs = []
        pre = {name for name, _ in self.pre}
        for name, node in self.post:
            uri = node.function.uri
            if uri == "federated_zip_at_clients":
                self._collect(node.argument, local, pre)
                continue
            fn = node.argument.elements[0][1] if isinstance(node.argument, nodes.Struct) \
                else None
            if uri != "federated_map":
                raise _NotLowerable()
            self._collect(node.argument.elements[1][1], local, pre)
            _check_in_graph(fn)  # a further TF leaf on tensors, or a lambda: called in the loop
        # the TF leaves the loop calls besides the first: those of the steps after it
        # (directly or in a lambda) and of the aggregations' functions
        self.post_leaves = [leaf.computation for _, n in self.post
                            if n.function.uri == "federated_map"
                            for leaf in _tf_leaves(n.argument.elements[0][1])]
        self.rules = [lookup(n.function.uri).rule("in_graph") for _, n in aggregates]
        for rule, (_, node) in zip(self.rules, aggregates):
            self.post_leaves += rule.functions(node)
        from fcore.execution.streaming import _client_part
        self.operands = [_client_part(n) for _, n in aggregates]
        for operand in self.operands:
            self._collect(operand, local, pre)
        if not set(materialise) <= local:
            raise _NotLowerable()
        self.extra_names = sorted(self.extras)
        self.extra_count = sum(len(structure.type_leaves(self.extras[n].member))
                               for n in self.extra_names)
        self.extra_values = [once(nodes.Reference(n, self.extras[n])) for n in self.extra_names]
        self.input_types = [t for _, node in self.inputs
                            for t in structure.type_leaves(node.type_signature.member)]
        self.aggregates = aggregates
        from fcore.execution.streaming import _elements
        # the server parts of each aggregation's argument (a secure sum's bound), this call's
        self.server_arguments = [[] if lookup(n.function.uri).whole_operand else
                                 [once(e) for e in _elements(n.argument)[1:]]
                                 for _, n in aggregates]
        # the aggregations' own inputs of the loop (federated_aggregate's zero), flat
        self.aggregate_inputs = [rule.inputs(node, arguments) for rule, (_, node), arguments
                                 in zip(self.rules, aggregates, self.server_arguments)]
        self.kept = sorted(materialise)
        self.types = {self.leaf_name: self.leaf.type_signature.result}
        self.types.update({name: node.type_signature.member for name, node in self.post})
        param_leaves = tff._leaves(self.leaf.parameter_type)
        sequences = [i for i, t in enumerate(param_leaves) if isinstance(t, core.SequenceType)]
        if len(sequences) > 1:
            raise _NotLowerable()
        self.param_leaves = param_leaves
        self.sequence = sequences[0] if sequences else None
        self.per_client = frozenset()  # positions of per-client tensors (see `classify`)

    def _collect(self, node, local, pre):
        """Checks that `node`, a value a step after the leaf or an aggregation takes, is
        references (possibly in structs) to values of the loop, broadcasts (`extras`) or
        per-client values from outside the loop (`inputs`), and notes the latter two."""
        if isinstance(node, nodes.Struct):
            for _, element in node.elements:
                self._collect(element, local, pre)
            return
        root = node
        while isinstance(root, nodes.Selection):
            root = root.source
        if not isinstance(root, nodes.Reference):
            raise _NotLowerable()
        if root.name in local:
            if root is not node:
                raise _NotLowerable()
            return
        type_ = node.type_signature
        if isinstance(type_, core.FederatedType) and type_.all_equal and \
                type_.placement.name == "CLIENTS" and root is node:
            self.extras[node.name] = type_
        elif structure.is_client_list(type_) and (root is node or root.name not in pre) and \
                all(isinstance(t, core.TensorType)
                    for t in structure.type_leaves(type_.member)):
            key = _input_key(node)
            if key not in dict(self.inputs):
                self.inputs.append((key, node))
        else:
            raise _NotLowerable()

    def client_inputs(self, index, members, once, member):
        """The flat values of `inputs` at client `index`."""
        return [leaf for _, node in self.inputs for leaf in structure.flatten(
            node.type_signature.member, member(node, index, members, once))]

    def classify(self, rows):
        """Finds the leaf's per-client tensor positions: those not the sequence whose value is
        not the same object at every client of the pass (a broadcast, or any value equal at
        every client, is one object: it stays a shared input, passed once)."""
        self.per_client = _per_client_positions(self, rows)

    def group_key(self, row):
        key = []
        for position, (value, type_) in enumerate(zip(row, self.param_leaves +
                                                      self.input_types)):
            if position == self.sequence:
                if not isinstance(value, list) or len(value) > tff.MAX_UNROLL:
                    return None
                key.append(("seq", tuple(tuple(np.shape(x) for x in tff._flatten(
                    type_.element, element)) for element in value)))
            elif position in self.per_client or position >= len(self.param_leaves):
                spec = _stackable(value, type_)
                if spec is None:
                    return None  # not a plain array of its type's dtype: client by client
                key.append(("client",) + spec)
            else:
                key.append(("value", id(value), np.shape(value)))
        return tuple(key)

    def merged(self, groups, rows):
        """`groups` with those whose keys differ only in sizes that the sequence's element
        type leaves unknown (`float32[?,784]`: batches of different sizes) merged into one,
        keyed by the key with those sizes None, if the leaf computes correctly with them
        padded (`padding.accepts_dynamic`): one compilation then serves them all."""
        if self.sequence is None or not padding.available():
            return groups
        loose = {}
        for key in groups:
            if key is not None:
                loose.setdefault(self._loose(key), []).append(key)
        merged = dict(groups)
        for loose_key, keys in loose.items():
            if len(keys) < 2:
                continue
            indices = sorted(i for key in keys for i in groups[key])
            concrete = self.leaf._unrolled_for(self.param_leaves, rows[indices[0]])
            if concrete is None or not padding.accepts_dynamic(concrete):
                continue
            for key in keys:
                del merged[key]
            merged[loose_key] = indices
        return merged

    def _loose(self, key):
        """`key` with the sequence's sizes that its element type leaves unknown as None."""
        types = tff._leaves(self.param_leaves[self.sequence].element)

        def loose(shape, type_):
            if type_.shape is None or len(type_.shape) != len(shape):
                return shape
            return tuple(None if want is None else have for have, want in zip(shape, type_.shape))
        batches = tuple(tuple(loose(shape, type_) for shape, type_ in zip(batch, types))
                        for batch in key[self.sequence][1])
        return key[:self.sequence] + (("seq", batches),) + key[self.sequence + 1:]

    def run(self, groups, rows, count, advance):
        accs = [accumulators.start(n.function.uri, n.function.type_signature, arguments)
                for (_, n), arguments in zip(self.aggregates, self.server_arguments)]
        kept = {name: {} for name in self.kept}
        remaining = set(range(count))
        for key, indices in groups.items():
            results = self._run_group(key, [rows[i] for i in indices])
            if results is None or not _merged(accs, results[0]):
                continue  # these clients take the per-client path
            kept_rows = results[1]
            for name, values in kept_rows.items():
                kept[name].update(zip(indices, values))
            remaining -= set(indices)
            advance(len(indices))
        return accs, kept, sorted(remaining)

    def _run_group(self, key, rows):
        concrete = self.leaf._unrolled_for(self.param_leaves, rows[0])
        if concrete is None:
            return None
        shared, stacked, layout = [], [], []
        capacity = _bucket(len(rows))
        for position, (value, type_) in enumerate(zip(rows[0], self.param_leaves)):
            if position == self.sequence:
                flats = [tff._unrolled_input(r[position], type_) for r in rows]
                for j in range(len(flats[0])):
                    pieces = [np.asarray(flat[j]) for flat in flats]
                    padded, dims, sizes = padding.padded_stack(pieces, capacity, _aligned_empty)
                    if dims:  # sizes differ: padded, each client's sizes an input
                        stacked += [padded, sizes]
                        layout.append(("padded", len(stacked) - 2, dims, len(stacked) - 1))
                        continue
                    stacked.append(_stacked(pieces, capacity))
                    layout.append(("stacked", len(stacked) - 1))
            elif position in self.per_client:  # one [clients, ...] array
                stacked.append(_stacked([r[position] for r in rows], capacity))
                layout.append(("stacked", len(stacked) - 1))
            else:
                shared.append(value)
                layout.append(("shared", len(shared) - 1))
        for position in range(len(self.param_leaves), len(rows[0])):  # `inputs`, after
            stacked.append(_stacked([r[position] for r in rows], capacity))
        cache_key = (key_ranks(key), self._text(),
                     tuple(entry[2] if entry[0] == "padded" else entry[0] for entry in layout))
        cache = _cache_of(self.leaf)
        function = cache.get(cache_key)
        if function is None:
            function = cache[cache_key] = _GroupFunction(self, concrete, layout)
        return function(shared + self.extra_inputs(), stacked, np.int32(len(rows)))

    def exclusive(self):
        """`STATEFUL_LOCK` if any TF leaf of the loop uses variables (`TFFunction.exclusive`),
        else a context that holds nothing."""
        contexts = [leaf.exclusive() for leaf in [self.leaf] + self.post_leaves]
        return tff.STATEFUL_LOCK if tff.STATEFUL_LOCK in contexts else contexts[0]

    def extra_inputs(self):
        """The flat tensors of the values the steps after the leaf use (`extras`), then the
        aggregations' own inputs (`aggregate_inputs`)."""
        return [leaf for name, value in zip(self.extra_names, self.extra_values)
                for leaf in structure.flatten(self.extras[name].member, value)] + [
            leaf for inputs in self.aggregate_inputs for leaf in inputs]

    def _text(self):
        """What, besides the leaf and the shapes, the compiled loop computes: the client
        steps after the leaf (and which TF leaves they call), each aggregation (intrinsic
        and type) and operand, and the values kept."""
        return tuple(str(n) for _, n in self.post) + tuple(
            id(leaf) for leaf in self.post_leaves) + tuple(
            (n.function.uri, str(n.function.type_signature), str(o), rule.key(n))
            for rule, (_, n), o in zip(self.rules, self.aggregates, self.operands)) + tuple(
            self.kept)


# The "in_graph" rules: how the compiled client loop accumulates an aggregation (only those
# attached here are lowered; a pass with another aggregation runs client by client). Each
# keeps flat float64 or integer totals in the loop's state: `initial(types)` gives them for
# the operand's leaf types, `add(function, totals, cursor, value)` adds one client's operand
# value at `cursor` (in place; returns the cursor after its totals), and `unpack(acc, totals,
# cursor, width, size)` loads the loop's totals into the intrinsic's streaming accumulator.

class _InGraphRule:
    """What an in-graph rule has unless it says otherwise: no functions of its own, no inputs
    of the loop besides the operand, and a streaming accumulator of the intrinsic for the
    group's partial result, whose totals are as many as the result's leaves."""

    def functions(self, node):
        """The TF leaves the rule calls in the loop (for locks and the cache key)."""
        return []

    def key(self, node):
        """What else of the call the compiled loop depends on (its cache key)."""
        return ()

    def inputs(self, node, server_argument):
        """The flat values the loop takes for this aggregation (passed, not constants)."""
        return []

    def bound(self, node, inputs, interpreter):
        """The rule for one trace of the loop, given its `inputs` as graph values."""
        return self

    def partial(self, node, server_argument):
        return accumulators.start(node.function.uri, node.function.type_signature, [])

    def width(self, node):
        return len(structure.leaf_types(node.function.type_signature.result.member))


class _LeafByLeaf(_InGraphRule):
    """An in-graph rule whose totals are one per operand leaf, each updated by `combine`."""

    def add(self, function, totals, cursor, value):
        for leaf in structure.leaves(value):
            totals[cursor] = self.combine(totals, totals[cursor], leaf)
            cursor += 1
        return cursor

    def unpack(self, acc, totals, cursor, width, size):
        acc.totals = totals[cursor:cursor + width] if size else None
        return cursor + width


class _InGraphSum(_LeafByLeaf):
    """`federated_sum`: totals in `_sum_dtype`, with 64-bit integer sums checked for
    wrap-around (the flag is the last of the loop's totals)."""

    def initial(self, types):
        import tensorflow as tf
        return [tf.zeros(t.shape, _sum_dtype(t)) for t in types]

    def combine(self, totals, total, leaf):
        import tensorflow as tf
        leaf = tf.cast(leaf, total.dtype)
        added = total + leaf
        if total.dtype in (tf.int64, tf.uint64):  # check: no wrap-around
            totals[-1] = tf.logical_or(totals[-1], _wrapped(total, leaf, added))
        return added


class _InGraphMean(_InGraphRule):
    """`federated_mean` and `federated_weighted_mean`: float64 totals and then the weight (a
    weighted mean leaves out a member of weight zero)."""

    def __init__(self, weighted):
        self.weighted = weighted

    def initial(self, types):
        import tensorflow as tf
        if self.weighted:  # the operand's leaves: the value's, then the weight
            types = types[:-1]
        return [tf.zeros(t.shape, tf.float64) for t in types] + [tf.constant(0.0, tf.float64)]

    def add(self, function, totals, cursor, value):
        import tensorflow as tf
        if self.weighted:
            leaves, weight = structure.leaves(value[0]), tf.cast(value[1], tf.float64)
            width = len(leaves)
            totals[cursor:cursor + width] = function._weighted_add(
                totals[cursor:cursor + width], leaves, weight)
            cursor += width
            totals[cursor] += weight
            return cursor + 1
        for leaf in structure.leaves(value):
            totals[cursor] += tf.cast(leaf, tf.float64)
            cursor += 1
        totals[cursor] += 1.0
        return cursor + 1

    def unpack(self, acc, totals, cursor, width, size):
        acc.totals = totals[cursor:cursor + width]
        acc.weight = float(totals[cursor + width])
        if acc.weight == 0:
            acc.totals = None
        return cursor + width + 1


class _InGraphExtremum(_LeafByLeaf):
    """`federated_min` and `federated_max`: running extrema in the operand's own dtype,
    starting from the dtype's largest (smallest) value; a NaN propagates, as in NumPy."""

    def __init__(self, smallest):
        self.smallest = smallest

    def initial(self, types):
        import tensorflow as tf
        return [tf.fill(t.shape, tf.constant(self._start(np.dtype(t.dtype)), t.dtype))
                for t in types]

    def _start(self, dtype):
        if dtype.kind == "f":
            return np.inf if self.smallest else -np.inf
        info = np.iinfo(dtype)
        return info.max if self.smallest else info.min

    def combine(self, totals, total, leaf):
        import tensorflow as tf
        leaf = tf.cast(leaf, total.dtype)
        best = tf.minimum(total, leaf) if self.smallest else tf.maximum(total, leaf)
        if total.dtype.is_floating:  # NaN wins, whatever the kernel's own choice
            nan = tf.logical_or(tf.math.is_nan(total), tf.math.is_nan(leaf))
            best = tf.where(nan, tf.constant(np.nan, total.dtype), best)
        return best


class _InGraphSecureSum(_InGraphRule):
    """`federated_secure_sum` and `federated_secure_sum_bitwidth`: exact int64 totals, and
    each leaf's smallest and largest client value, and whether a total wrapped around. The
    bound is checked when the group's partial sum is merged (`SecureSum.accepts`): a group
    with a value out of range, or whose int64 total wrapped, runs again client by client,
    which reports the client as the reference does."""

    def initial(self, types):
        import tensorflow as tf
        int64 = np.iinfo(np.int64)
        return ([tf.zeros(t.shape, tf.int64) for t in types] +
                [tf.fill(t.shape, tf.constant(int64.max, tf.int64)) for t in types] +
                [tf.fill(t.shape, tf.constant(int64.min, tf.int64)) for t in types] +
                [tf.constant(False)])

    def add(self, function, totals, cursor, value):
        import tensorflow as tf
        leaves = structure.leaves(value)
        width = len(leaves)
        for i, leaf in enumerate(leaves):
            leaf = tf.cast(leaf, tf.int64)
            total = totals[cursor + i]
            added = total + leaf
            totals[cursor + 3 * width] = tf.logical_or(totals[cursor + 3 * width],
                                                       _wrapped(total, leaf, added))
            totals[cursor + i] = added
            totals[cursor + width + i] = tf.minimum(totals[cursor + width + i], leaf)
            totals[cursor + 2 * width + i] = tf.maximum(totals[cursor + 2 * width + i], leaf)
        return cursor + 3 * width + 1

    def partial(self, node, server_argument):
        return accumulators.SecureSumPartial(node.function.type_signature)

    def unpack(self, acc, totals, cursor, width, size):
        acc.totals = [np.asarray(t, dtype=np.int64).astype(object)
                      for t in totals[cursor:cursor + width]]
        acc.smallest = list(totals[cursor + width:cursor + 2 * width])
        acc.largest = list(totals[cursor + 2 * width:cursor + 3 * width])
        acc.wrapped = bool(totals[cursor + 3 * width])
        acc.count = size
        return cursor + 3 * width + 1


class _InGraphAggregate(_InGraphRule):
    """`federated_aggregate`: the loop folds each client into the group's own accumulator,
    which starts at `zero` (an input of the loop) and is updated by `accumulate` called in
    the graph (a TF leaf's traced graph, or a lambda of TF leaves). The group's accumulator
    is merged into the round's with `merge` (zero is an identity of merge, which the
    streaming accumulator checks), and `report` runs once, at the end. An `accumulate` that
    is not a TF leaf or a closed lambda without intrinsics runs client by client."""

    def __init__(self, node=None, zero=None, accumulate=None):
        self.node, self.zero, self.accumulate = node, zero, accumulate

    @staticmethod
    def _function(node):
        if not isinstance(node.argument, nodes.Struct) or len(node.argument.elements) != 5:
            raise _NotLowerable()
        return node.argument.elements[2][1]

    def functions(self, node):
        fn = self._function(node)
        _check_in_graph(fn)
        return [leaf.computation for leaf in _tf_leaves(fn)]

    def key(self, node):
        return str(self._function(node))

    def _type(self, node):
        return node.function.type_signature.parameter[1]  # zero's, the accumulator's

    def inputs(self, node, server_argument):
        return structure.flatten(self._type(node), server_argument[0])

    def bound(self, node, inputs, interpreter):
        return _InGraphAggregate(node, tff._unflatten(self._type(node), list(inputs), False,
                                                      True),
                                 _in_graph(self._function(node), interpreter))

    def initial(self, types):
        return list(structure.leaves(self.zero))

    def add(self, function, totals, cursor, value):
        width = self.width(self.node)
        accumulator = tff._unflatten(self._type(self.node), totals[cursor:cursor + width],
                                     False, True)
        totals[cursor:cursor + width] = structure.leaves(
            self.accumulate(Struct([(None, accumulator), (None, value)])))
        return cursor + width

    def partial(self, node, server_argument):
        return SimpleNamespace(accumulator=None, type_=self._type(node))

    def width(self, node):
        return len(structure.leaf_types(self._type(node)))

    def unpack(self, acc, totals, cursor, width, size):
        acc.accumulator = structure.rebuild(acc.type_, totals[cursor:cursor + width])
        return cursor + width


def _check_in_graph(fn):
    """Raises `_NotLowerable` unless `fn` can be called on graph values in the loop: a TF
    leaf on tensors, or a lambda with no free names and no intrinsics."""
    if isinstance(fn, nodes.TFLeaf):
        leaf = fn.computation
        if not hasattr(leaf, "_concrete") or leaf.parameter_type is None or any(
                isinstance(t, core.SequenceType) for t in tff._leaves(leaf.parameter_type)):
            raise _NotLowerable()
        return
    if not isinstance(fn, nodes.Lambda) or analysis.free_names(fn) or _has_intrinsics(fn):
        raise _NotLowerable()
    for leaf in _tf_leaves(fn):
        _check_in_graph(leaf)


def _tf_leaves(node):
    if isinstance(node, nodes.TFLeaf):
        return [node]
    return [leaf for child in node.children() for leaf in _tf_leaves(child)]


def _merged(accs, partials):
    """Merges a compiled group's partial accumulators into `accs` if every one may be
    (`accepts`: a secure sum's inputs in range); returns whether it did."""
    if not all(getattr(acc, "accepts", lambda partial: True)(partial)
               for acc, partial in zip(accs, partials)):
        return False
    for acc, partial in zip(accs, partials):
        acc.merge(partial)
    return True


lookup("federated_sum").def_rule("in_graph", _InGraphSum())
lookup("federated_secure_sum").def_rule("in_graph", _InGraphSecureSum())
lookup("federated_secure_sum_bitwidth").def_rule("in_graph", _InGraphSecureSum())
lookup("federated_min").def_rule("in_graph", _InGraphExtremum(smallest=True))
lookup("federated_max").def_rule("in_graph", _InGraphExtremum(smallest=False))
lookup("federated_mean").def_rule("in_graph", _InGraphMean(weighted=False))
lookup("federated_weighted_mean").def_rule("in_graph", _InGraphMean(weighted=True))
lookup("federated_aggregate").def_rule("in_graph", _InGraphAggregate())


def _sum_dtype(type_):
    """The dtype a sum of `type_` accumulates in: integers of up to 32 bits in 64 bits
    (exact for any number of clients a round has; the total is range-checked after)."""
    import tensorflow as tf
    if type_.dtype.kind == "i":
        return tf.int64
    if type_.dtype.kind == "u":
        return tf.uint64
    return tf.as_dtype(type_.dtype)


def _wrapped(total, leaf, added):
    """Whether `total + leaf` (= `added`) wrapped around, for 64-bit integers."""
    import tensorflow as tf
    if total.dtype == tf.uint64:
        return tf.reduce_any(added < total)
    same_sign = tf.equal(total >= 0, leaf >= 0)
    return tf.reduce_any(tf.logical_and(same_sign, tf.not_equal(added >= 0, total >= 0)))


def key_ranks(key):
    """A group key without the identities of its shared values and without the sizes of its
    dimensions: groups that differ only in sizes (clients whose last batches differ) share
    one loop, traced once with those dimensions unknown (`reduce_retracing`); XLA still
    compiles it for each shape."""
    def ranks(k):
        if k[0] == "seq":
            return "seq", tuple(tuple(len(shape) for shape in element) for element in k[1])
        if k[0] == "client":
            return "client", len(k[1]), k[2]
        return "value", len(k[2])
    return tuple(ranks(k) for k in key)


def _per_client_positions(plan, rows):
    """The positions of the leaf's flat argument, other than its sequence, whose value is
    not the same object in every row."""
    if not rows:
        return frozenset()
    first = rows[0]
    return frozenset(position for position in range(len(plan.param_leaves))
                     if position != plan.sequence and
                     any(row[position] is not first[position] for row in rows))


def _stackable(value, type_):
    """`(shape, dtype)` of a per-client tensor that stacks into a numeric array of its
    type's dtype, else None (strings, values of another dtype: run client by client)."""
    if not isinstance(value, (np.ndarray, np.generic)):
        return None
    dtype = value.dtype
    if dtype.kind not in "biufc" or dtype != type_.dtype:
        return None
    return np.shape(value), dtype.str


def _stacked(values, capacity=None):
    """The clients' values of one position as one `[clients, ...]` array (aligned, so that
    TensorFlow can share it), with zero rows after them up to `capacity` rows."""
    return _aligned_concatenate([np.asarray(v)[None] for v in values], capacity)


def _bucket(count):
    """The rows a group's stacked inputs get (`padding.bucket`, at least MIN_GROUP): without
    it every new group size (sampled clients change them every round) would compile the loop
    again. The padding rows are zeros the loop never reads."""
    return padding.bucket(max(count, MIN_GROUP))


def _has_intrinsics(node):
    if isinstance(node, nodes.Intrinsic):
        return True
    return any(_has_intrinsics(c) for c in node.children())


# Ops that XLA compiles to nothing: a loop whose leaves use them runs as a plain graph, where
# a failed `tf.debugging.assert_*` stops the loop (its clients then run one by one, and the
# error names the client), never a silently different result.
_XLA_DROPS = frozenset({"Assert", "PrintV2", "Print"})


def _checks(concrete, plan):
    """Whether the loop's TF leaves contain ops XLA would drop (`_XLA_DROPS`); a function
    whose graph cannot be read counts as having them."""
    for function in [concrete] + [leaf._concrete for leaf in plan.post_leaves]:
        # a traced function has a graph; one loaded from a SavedModel (on a Dask worker)
        # has its traced variants
        variants = [function] if hasattr(function, "graph") else \
            list(getattr(function, "concrete_functions", None) or [])
        if not variants:
            return True
        for variant in variants:
            definition = variant.graph.as_graph_def()
            ops = {node.op for node in definition.node} | {
                node.op for f in definition.library.function for node in f.node_def}
            if ops & _XLA_DROPS:
                return True
    return False


def _constant_arguments(function, shared, data):
    """Whether XLA takes some inputs of the loop as compile-time constants: their values
    are then folded into the executable, which XLA compiles again for every new value (each
    round), at about a second each. This happens when a shape a leaf computes depends on the
    values of its inputs, or on tensors passed between nested `tf.function`s (a gradient
    through a `tf.function` the leaf calls): the loop then runs as a plain graph. Seen in
    the lowered HLO, whose entry takes one parameter per input that is not a constant."""
    concrete = function.get_concrete_function(shared, *data, xla=True)
    hlo = function.experimental_get_compiler_ir(shared, *data, xla=True)(stage="hlo")
    entry = hlo[hlo.index("\nENTRY"):]
    return entry.count(" parameter(") < len(concrete.inputs)


class _GroupFunction:
    """The compiled loop over one group's clients."""

    def __init__(self, plan, concrete, layout):
        self.plan, self.concrete, self.layout = plan, concrete, layout
        # the stacked inputs the leaf takes (the per-client `inputs` follow them)
        self.used = 1 + max([entry[1] for entry in layout or () if entry[0] == "stacked"] +
                            [entry[3] for entry in layout or () if entry[0] == "padded"],
                            default=-1)
        self.functions = None
        self.traced = None  # every tf.function made (for compile counts)
        self.checked = False  # whether XLA was checked to take every input as an argument
        self.plain_ran = False  # whether the plain graph ran at least once

    jit = True  # alike shapes: XLA first, then a plain graph if XLA refuses

    def __call__(self, shared, *data):
        import tensorflow as tf
        if self.functions is None:
            # reduce_retracing: inputs of new sizes (more clients, longer columns) reuse a
            # graph with unknown dimensions instead of tracing one per size
            # (an instance attribute from here: `_weighted_add` picks its form by it)
            self.jit = self.jit and not _checks(self.concrete, self.plan)
            self.functions = ([tf.function(functools.partial(self._loop, xla=True),
                                           jit_compile=True, reduce_retracing=True,
                                           autograph=False)]
                              if self.jit else []) + \
                [tf.function(functools.partial(self._loop, xla=False), reduce_retracing=True,
                             autograph=False)]
            self.traced = list(self.functions)
        shared = [_tensor(s) if not isinstance(s, (list, Struct)) else s for s in shared]
        data = tf.nest.map_structure(_tensor, data)
        with self.plan.exclusive():  # leaves that train a model: one thread at a time
            return self._call(shared, data)

    def _call(self, shared, data):
        while self.functions:
            function = self.functions[0]
            plain = function is self.traced[-1]
            try:
                if not plain and not self.checked:
                    self.checked = True
                    if _constant_arguments(function, shared, data):
                        self._drop(function)  # XLA would compile again for each round
                        continue
                outputs = function(shared, *data)
                self.plain_ran = self.plain_ran or plain
                break
            except Exception:  # noqa: BLE001 - XLA may refuse the graph: try without it
                if plain and self.plain_ran:
                    # the plain graph, which ran before: these inputs failed (an assertion),
                    # so this round's clients run one by one (naming the client); it stays
                    return None
                self._drop(function)
        else:
            return None
        return self._unpack(outputs, self._size(*data))

    def _drop(self, function):
        """Stops using `function` (XLA's, then the plain graph's) for this loop."""
        with _FALLBACK_LOCK:
            if self.functions and self.functions[0] is function:
                self.functions.pop(0)

    def _size(self, stacked, count):
        return int(count)

    def _count(self, stacked, count):
        """The number of clients (the loop's bound: the stacked inputs may have more rows)."""
        return count

    def _capacity(self, stacked, count):
        """The rows of the stacked inputs (static under XLA: the size of the kept arrays)."""
        import tensorflow as tf
        return tf.shape(stacked[0])[0] if stacked else count

    def _client_inputs(self, i, stacked, count):
        """The flat `inputs` of client `i` (in the graph): stacked after the leaf's own."""
        return [column[i] for column in stacked[self.used:]]

    def _client_outputs(self, i, shared, stacked, count, xla=False):
        """The leaf's outputs for client `i` (in the graph): padded inputs at the client's
        sizes (`padding.with_sizes`)."""
        flat = []
        for entry in self.layout:
            if entry[0] == "shared":
                flat.append(shared[entry[1]])
            elif entry[0] == "stacked":
                flat.append(stacked[entry[1]][i])
            else:
                _, index, dims, sizes = entry
                flat.append(padding.with_sizes(stacked[index][i], dims, stacked[sizes][i], xla))
        return self.concrete(*flat)

    def _loop(self, shared, *data, xla=False):
        import tensorflow as tf
        plan = self.plan
        count = self._count(*data)
        interpreter = _GraphInterpreter()
        functions = {name: _in_graph(node.argument.elements[0][1], interpreter)
                     for name, node in plan.post if node.function.uri == "federated_map"}
        own = [len(inputs) for inputs in plan.aggregate_inputs]
        extras, flat = {}, list(shared[len(shared) - plan.extra_count - sum(own):])
        for name in plan.extra_names:
            extras[name] = tff._unflatten(plan.extras[name].member, flat, False, True)
        # each aggregation's rule, bound to its inputs, and the leaf types of its client
        # operand (a secure sum's bound is not)
        specs = []
        for rule, (_, n), width in zip(plan.rules, plan.aggregates, own):
            specs.append((rule.bound(n, flat[:width], interpreter), structure.leaf_types(
                n.argument.type_signature if lookup(n.function.uri).whole_operand
                else n.argument.type_signature[0])))
            del flat[:width]
        initial = []
        for in_graph, types in specs:
            initial += in_graph.initial(types)
        initial.append(tf.constant(False))  # an int64 sum overflowed
        kept_types = [structure.leaf_types(plan.types[name]) for name in plan.kept]
        capacity = self._capacity(*data)
        arrays = [tf.TensorArray(t.dtype, size=capacity) for types in kept_types for t in types]

        def body(i, totals, arrays):
            outputs = self._client_outputs(i, shared, *data, xla=xla)
            members = dict(extras)
            flat_inputs = self._client_inputs(i, *data)
            for key, node in plan.inputs:
                members[key] = tff._unflatten(node.type_signature.member, flat_inputs, False,
                                              True)
            members[plan.leaf_name] = tff._unflatten(plan.leaf.type_signature.result,
                                                     list(outputs), False, True)
            for name, node in plan.post:
                if node.function.uri == "federated_zip_at_clients":
                    members[name] = _operand(node.argument, members)
                else:
                    members[name] = functions[name](_operand(node.argument.elements[1][1],
                                                             members))
            totals = list(totals)
            cursor = 0
            for (in_graph, _), operand in zip(specs, plan.operands):
                cursor = in_graph.add(self, totals, cursor, _operand(operand, members))
            arrays = list(arrays)
            position = 0
            for name in plan.kept:
                for leaf in structure.leaves(members[name]):
                    arrays[position] = arrays[position].write(i, leaf)
                    position += 1
            return i + 1, totals, arrays

        _, totals, arrays = tf.while_loop(lambda i, *_: i < count, body,
                                          (tf.constant(0), initial, arrays))
        return totals, [a.stack() for a in arrays]

    def _weighted_add(self, totals, leaves, weight):
        """`totals + leaves * weight`, leaving out a member of weight zero (even a non-finite
        one): element-wise under XLA (which runs that faster than a branch), else a branch."""
        import tensorflow as tf
        if self.jit:
            scaled = [tf.cast(leaf, tf.float64) * weight for leaf in leaves]
            return [t + tf.where(weight != 0, s, tf.zeros_like(s))
                    for t, s in zip(totals, scaled)]
        return tf.cond(weight != 0,
                       lambda: [t + tf.cast(leaf, tf.float64) * weight
                                for t, leaf in zip(totals, leaves)],
                       lambda: list(totals))

    def _unpack(self, outputs, size):
        totals, arrays = outputs
        totals = [t.numpy() for t in totals]
        if totals.pop():
            raise ExecutionError("federated_sum: the sum of the clients' 64-bit integer "
                                 "values does not fit their dtype.")
        accs, cursor = [], 0
        for rule, (_, node), arguments in zip(self.plan.rules, self.plan.aggregates,
                                              self.plan.server_arguments):
            acc = rule.partial(node, arguments)
            cursor = rule.unpack(acc, totals, cursor, rule.width(node), size)
            accs.append(acc)
        kept, position = {}, 0
        for name in self.plan.kept:
            types = structure.leaf_types(self.plan.types[name])
            columns = [a.numpy() for a in arrays[position:position + len(types)]]
            position += len(types)
            kept[name] = [tff._unflatten(self.plan.types[name], [c[row] for c in columns],
                                         for_python=False) for row in range(size)]
        return accs, kept


class _RaggedFunction(_GroupFunction):
    """A loop over clients whose sequences differ in length or batch sizes: each client's
    batches are sliced from concatenated arrays, and `tf.switch_case` picks the unrolled
    variant for its number of batches. Shapes vary, so this graph is not XLA-compiled."""

    jit = False

    def __init__(self, plan, concretes, width, shared_count, per_client=frozenset()):
        super().__init__(plan, None, None)
        self.concretes, self.width, self.shared_count = concretes, width, shared_count
        self.per_client = per_client  # positions of per-client tensors, stacked in `values`
        self.lengths = [length for length, _ in concretes]

    def _size(self, branch, starts, sizes, columns, values):
        return len(branch)

    def _count(self, branch, starts, sizes, columns, values):
        import tensorflow as tf
        return tf.shape(branch)[0]

    _capacity = _count

    def _client_inputs(self, i, branch, starts, sizes, columns, values):
        return [column[i] for column in values[len(self.per_client):]]

    def _client_outputs(self, i, shared, branch, starts, sizes, columns, values, xla=False):
        import tensorflow as tf
        plan = self.plan

        def call(lengths, concrete):
            def run():
                batch_leaves = []
                for j in range(lengths):
                    for e in range(self.width):
                        start, size = starts[e][i, j], sizes[e][i, j]
                        batch_leaves.append(tf.slice(columns[e], _begin(start, columns[e]),
                                                     _extent(size, columns[e])))
                return list(concrete(*_client_flat(plan, self.per_client, i, shared, values,
                                                   batch_leaves)))
            return run
        return tf.switch_case(branch[i], [call(k, c) for k, c in self.concretes])


def _tensor(value):
    """A tensor for an input array: large C-contiguous arrays are shared with TensorFlow
    through DLPack instead of copied (these arrays are this module's own, never changed)."""
    import tensorflow as tf
    if isinstance(value, np.ndarray) and value.nbytes >= 1 << 20 and \
            value.flags.c_contiguous and value.dtype.kind in "fiub" and \
            value.ctypes.data % _ALIGNMENT == 0:  # TensorFlow's kernels need aligned data
        try:
            return tf.experimental.dlpack.from_dlpack(value.__dlpack__())
        except Exception:  # noqa: BLE001 - alignment or dtype it will not take: copy
            pass
    return tf.convert_to_tensor(value)


_ALIGNMENT = 64


def _aligned_empty(shape, dtype):
    """An uninitialised array in memory aligned for TensorFlow (so it can be shared)."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape)) * dtype.itemsize
    buffer = np.empty(size + _ALIGNMENT, np.uint8)
    offset = -buffer.ctypes.data % _ALIGNMENT
    return buffer[offset:offset + size].view(dtype).reshape(shape)


def _aligned_concatenate(pieces, capacity=None):
    """`np.concatenate(pieces)` into aligned memory (`_aligned_empty`), followed by zero
    rows up to `capacity` rows if given."""
    used = sum(len(p) for p in pieces)
    shape = (max(used, capacity or 0),) + pieces[0].shape[1:]
    out = _aligned_empty(shape, np.result_type(*pieces))
    np.concatenate(pieces, out=out[:used])
    out[used:] = 0
    return out


def _begin(start, column):
    import tensorflow as tf
    return tf.concat([[start], tf.zeros([tf.rank(column) - 1], tf.int32)], 0)


def _extent(size, column):
    import tensorflow as tf
    return tf.concat([[size], tf.shape(column)[1:]], 0)


def run_ragged(plan, indices, rows):
    """Runs clients of unequal sequences in one graph (see `_RaggedFunction`); returns
    `(partial accumulators, kept rows)` or None."""
    sequence = plan.sequence
    if sequence is None or len(indices) < 2:
        return None
    element_type = plan.param_leaves[sequence].element
    width = len(tff._leaves(element_type))
    per_client = _per_client_positions(plan, [rows[i] for i in indices])
    shared = _shared_inputs(plan, rows[indices[0]], per_client)
    values = _stacked_inputs(plan, rows, indices, per_client)
    if values is None:
        return None
    if any(not isinstance(rows[i][sequence], list) and int(rows[i][sequence].cardinality()) < 0
           for i in indices):
        return None  # a dataset of unknown length: run client by client
    needed = sorted({len(rows[i][sequence]) for i in indices})
    if needed[-1] > tff.MAX_UNROLL:
        return None
    for length in needed:  # the leaf keeps each unrolled variant it traces
        sample = next(rows[i] for i in indices if len(rows[i][sequence]) == length)
        if plan.leaf._unrolled_for(plan.param_leaves, sample) is None:
            return None
    cache = _cache_of(plan.leaf)
    cache_key = ("ragged", plan._text(), width,
                 tuple((t.dtype, t.shape[1:] if t.shape else t.shape)
                       for t in tff._leaves(element_type)), tuple(sorted(per_client)))
    function = cache.get(cache_key)
    if function is None or not set(needed) <= set(function.lengths):
        # one loop for every number of batches seen so far: a round whose clients have
        # new lengths traces it again (at most once per new length), any other reuses it
        lengths = sorted(set(needed) | set(function.lengths if function else ()))
        concretes = [(length, plan.leaf._unrolled[(length,)]) for length in lengths]
        function = cache[cache_key] = _RaggedFunction(plan, concretes, width, len(shared),
                                                      per_client)
    lengths = function.lengths
    longest = lengths[-1]
    starts = [np.zeros((len(indices), max(longest, 1)), np.int32) for _ in range(width)]
    sizes = [np.zeros((len(indices), max(longest, 1)), np.int32) for _ in range(width)]
    pieces = [[] for _ in range(width)]
    filled = [0] * width
    for c, index in enumerate(indices):
        for j, element in enumerate(rows[index][sequence]):
            for e, leaf in enumerate(tff._flatten(element_type, element)):
                leaf = np.asarray(leaf)
                if leaf.ndim == 0:
                    return None  # scalar elements have no batch dimension to slice
                starts[e][c, j], sizes[e][c, j] = filled[e], len(leaf)
                filled[e] += len(leaf)
                pieces[e].append(leaf)
    if any(not p for p in pieces):
        return None
    columns = [_aligned_concatenate(p) for p in pieces]
    branch = np.array([lengths.index(len(rows[i][sequence])) for i in indices], np.int32)
    return function(shared + plan.extra_inputs(), branch, starts, sizes, columns, values)


class _LoopedFunction(_GroupFunction):
    """A loop over clients whose sequences differ in their number of batches, calling the
    leaf's looped variant (`TFFunction.looped_variant`), traced once for any number: the
    clients' batches are rows of one padded column per element leaf, each client's full
    batches run in a graph loop, and its partial last batch at its sizes (XLA's dynamic
    dimensions, or a slice in a plain graph). XLA compiles it once per bucket of rows and
    clients (`padding.bucket`), so rounds with new numbers of batches reuse it."""

    def __init__(self, plan, padded, per_client):
        self.plan, self.padded, self.per_client = plan, padded, per_client
        self.variants = {}
        super().__init__(plan, self._variant(True), None)

    def _variant(self, xla):
        if xla not in self.variants:
            self.variants[xla] = self.plan.leaf.looped_variant(
                self.padded, functools.partial(padding.with_sizes, xla=xla),
                "xla" if xla else "slice")
        return self.variants[xla]

    def _size(self, columns, meta, sizes, values, count):
        return int(count)

    def _count(self, columns, meta, sizes, values, count):
        return count

    def _capacity(self, columns, meta, sizes, values, count):
        import tensorflow as tf
        return tf.shape(meta)[0]

    def _client_inputs(self, i, columns, meta, sizes, values, count):
        return [column[i] for column in values[len(self.per_client):]]

    def _client_outputs(self, i, shared, columns, meta, sizes, values, count, xla=False):
        concrete = self._variant(xla)
        if concrete is None:
            raise TypeError("the leaf has no looped variant without XLA")
        sequence = list(columns) + [meta[i, 0], meta[i, 1], meta[i, 2]] + \
            [size[i] for size in sizes]
        return concrete(*_client_flat(self.plan, self.per_client, i, shared, values, sequence))


def _shared_inputs(plan, row, per_client):
    """The leaf's inputs equal at every client (neither its sequence nor per-client)."""
    return [row[position] for position in range(len(plan.param_leaves))
            if position != plan.sequence and position not in per_client]


def _stacked_inputs(plan, rows, indices, per_client, capacity=None):
    """The clients' per-client tensors (the leaf's `per_client` positions, then the loop's
    `inputs`), each stacked into one `[clients, ...]` array; None when one of them is not
    stackable or has several shapes (the clients then run client by client)."""
    positions = sorted(per_client) + list(range(len(plan.param_leaves), len(rows[indices[0]])))
    types = plan.param_leaves + plan.input_types
    values = []
    for position in positions:
        specs = {_stackable(rows[i][position], types[position]) for i in indices}
        if None in specs or len(specs) != 1:
            return None
        values.append(_stacked([rows[i][position] for i in indices], capacity))
    return values


def _client_flat(plan, per_client, i, shared, values, sequence):
    """The leaf's flat inputs for client `i` (in the graph): the tensors `sequence` in place
    of its sequence, its per-client tensors (`per_client` positions) from the stacked
    `values`, the others from `shared`."""
    flat, cursor, stacked = [], 0, 0
    for position in range(len(plan.param_leaves)):
        if position == plan.sequence:
            flat += sequence
        elif position in per_client:
            flat.append(values[stacked][i])
            stacked += 1
        else:
            flat.append(shared[cursor])
            cursor += 1
    return flat


def run_looped(plan, indices, rows):
    """Runs the clients of `indices` whose batches all have one padded shape but their last
    (which may be smaller along the dimensions its type leaves unknown) in one compiled loop
    (`_LoopedFunction`); returns `(partial accumulators, kept rows, the indices it ran)`,
    or None."""
    sequence = plan.sequence
    if sequence is None or len(indices) < MIN_GROUP or not padding.available():
        return None  # a compilation serves rounds of many clients, not a few
    types = tff._leaves(plan.param_leaves[sequence].element)
    if any(not isinstance(t, core.TensorType) or t.shape is None for t in types):
        return None
    per_client = _per_client_positions(plan, [rows[i] for i in indices])
    batches = {}  # client index -> its batches, each a list of arrays (one per leaf)
    for i in indices:
        sequence_value = rows[i][sequence]
        if not isinstance(sequence_value, list):
            continue  # a dataset of unknown or great length: client by client
        elements = [[np.asarray(leaf) for leaf in tff._flatten(
            plan.param_leaves[sequence].element, element)] for element in sequence_value]
        if all(leaf.dtype == t.dtype and leaf.ndim == len(t.shape) and
               all(want is None or want == have for have, want in zip(leaf.shape, t.shape))
               for element in elements for leaf, t in zip(element, types)):
            batches[i] = elements
    shapes = [element for elements in batches.values() for element in elements]
    if not shapes:
        return None
    padded = tuple(tuple(max(element[e].shape[d] for element in shapes)
                         for d in range(len(t.shape))) for e, t in enumerate(types))

    def full(element):
        return all(leaf.shape == shape for leaf, shape in zip(element, padded))
    chosen = [i for i in indices if i in batches and all(full(e) for e in batches[i][:-1])]
    if len(chosen) < MIN_GROUP:
        return None
    partial = any(not full(batches[i][-1]) for i in chosen if batches[i])
    if partial:  # the leaf must compute on a partial batch as on the unpadded one
        sample = list(rows[chosen[0]])
        sample[sequence] = [None]  # the variant for one batch, of unknown sizes
        concrete = plan.leaf._unrolled_for(plan.param_leaves, sample)
        if concrete is None or not padding.accepts_dynamic(concrete):
            return None
    cache = _cache_of(plan.leaf)
    cache_key = ("looped", plan._text(), padded, tuple(sorted(per_client)))
    function = cache.get(cache_key)
    if function is None:
        function = cache[cache_key] = _LoopedFunction(plan, padded, per_client)
    if function.concrete is None:
        return None  # the leaf's code needs a list or a real dataset
    values = _stacked_inputs(plan, rows, chosen, per_client, _bucket(len(chosen)))
    if values is None:
        return None
    dims = [tuple(d for d, size in enumerate(t.shape) if size is None) for t in types]
    total = sum(len(batches[i]) for i in chosen)
    columns = [_aligned_empty((padding.bucket(total),) + shape, t.dtype)
               for shape, t in zip(padded, types)]
    for column in columns:
        column[...] = 0
    meta = np.zeros((_bucket(len(chosen)), 3), np.int32)
    sizes = [np.zeros((len(meta), len(d)), np.int32) for d in dims]
    row = 0
    for c, i in enumerate(chosen):
        elements = batches[i]
        last = int(bool(elements) and not full(elements[-1]))
        meta[c] = (row, len(elements) - last, last)
        for element in elements:
            for column, leaf in zip(columns, element):
                column[(row,) + tuple(slice(0, n) for n in leaf.shape)] = leaf
            row += 1
        if last:
            for e, d in enumerate(dims):
                sizes[e][c] = [elements[-1][e].shape[k] for k in d]
    shared = _shared_inputs(plan, rows[chosen[0]], per_client)
    results = function(shared + plan.extra_inputs(), columns, meta, sizes, values,
                       np.int32(len(chosen)))
    if results is None:
        return None
    return results[0], results[1], chosen


class _GraphInterpreter(Interpreter):
    """The reference interpreter over graph values: a lambda's TF leaves call their traced
    graphs (in the loop's graph) instead of running eagerly on NumPy values."""

    def _tfleaf(self, node, env):
        return _in_graph(node, self)


def _in_graph(fn, interpreter):
    """A step's function as a function of graph values: a lambda as the reference
    interpreter evaluates it, a TF leaf by calling its traced graph."""
    if isinstance(fn, nodes.TFLeaf):
        leaf = fn.computation

        def call(argument):
            outputs = leaf._concrete(*tff._flatten(leaf.parameter_type, argument))
            return tff._unflatten(leaf.type_signature.result, list(outputs), False, True)
        return call
    return interpreter.evaluate(fn, Environment())


def _input_key(node):
    """The key of a per-client input in the loop's members: its name, or for a selection
    (`arg.weight`) a tuple, which no name can equal."""
    return node.name if isinstance(node, nodes.Reference) else ("input", str(node))


def _operand(node, members):
    if isinstance(node, nodes.Reference):
        return members[node.name]
    if isinstance(node, nodes.Selection):
        return members[_input_key(node)]
    if isinstance(node, nodes.Struct):
        return Struct([(n, _operand(e, members)) for n, e in node.elements])
    raise _NotLowerable()
