"""The distributed executor: the fast executor, with each pass over the clients run on a Dask
cluster (`dask.distributed`).

Per pass, the client work is compiled into a client program, an ordinary fcore computation
from one client's inputs to what the pass needs of that client; it travels to the workers as
a saved computation (IR text and TensorFlow SavedModels, no pickled Python), cached on each
worker by its SHA-256. Clients are split into chunks; each chunk's data is scattered to the
cluster once and stays there across rounds while the same client list is used. A worker runs
the program for each client of its chunk and folds the results into accumulators, returning
one partial value per aggregation; the driver merges them. A chunk whose worker dies is sent
again (with its data) to another worker; after `retries` failures its clients are dropped and
reported, never silently averaged in."""

from __future__ import annotations

import collections
import hashlib
import itertools
import threading
import time
import warnings
import weakref

import numpy as np

from fcore import structure
from fcore.execution import intrinsic_impls as impls
from fcore.execution.errors import ExecutionError
from fcore.execution.cache import LRU
from fcore.execution.context import register_executor
from fcore.execution.streaming import StreamingInterpreter
from fcore.intrinsics.definitions import lookup
from fcore.ir import nodes
from fcore.types import core

CONNECT_TIMEOUT = 10  # seconds to reach a scheduler before giving up
CHUNKS_PER_WORKER = 1  # more chunks: finer retries after a worker loss, more overhead
WORKER_WAIT = 60  # seconds a call waits, in all, for workers to come back after losing them
_clients: dict = {}
last_report: dict = {}  # of the latest distributed pass: chunks, retried, dropped clients
_lock = threading.Lock()


class DistributedExecutionError(ExecutionError):
    """The cluster could not be reached or could not run the work."""


class SchedulerUnreachableError(DistributedExecutionError, TimeoutError):
    """No scheduler answered within `CONNECT_TIMEOUT` (also a `TimeoutError`, an `OSError`, as
    Dask's own client raises)."""


def connect(dask):
    """A `distributed.Client` for a scheduler address (connecting once per address), or the
    given client itself."""
    try:
        import distributed
    except ImportError:
        raise DistributedExecutionError("The Dask executor needs dask.distributed: pip install "
                                        "'dask[distributed]'.") from None
    if isinstance(dask, distributed.Client):
        return dask
    if not isinstance(dask, str):
        raise TypeError(f"dask= takes a scheduler address such as 'tcp://scheduler:8786' or a "
                        f"distributed.Client, found {dask!r}.")
    with _lock:
        client = _clients.get(dask)
        if client is None or client.status not in ("running", "connecting"):
            try:
                client = distributed.Client(dask, timeout=CONNECT_TIMEOUT,
                                            set_as_default=False)
            except (OSError, TimeoutError) as e:
                raise SchedulerUnreachableError(
                    f"Cannot reach the Dask scheduler at {dask} within {CONNECT_TIMEOUT} s: "
                    f"{type(e).__name__}: {e}") from None
            _clients[dask] = client
        return client


class DistributedInterpreter(StreamingInterpreter):
    """Runs passes over clients on a Dask cluster (see the module doc)."""

    lower = False  # passes go to the workers (which run their chunks with the fast path)

    def __init__(self, client, *args, retries=2, chunks_per_worker=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.client = client
        self.retries = retries
        self.chunks_per_worker = chunks_per_worker or CHUNKS_PER_WORKER
        self.dropped = []
        self._wait_until = None  # the deadline for workers to come back (set at a loss)

    def _pass(self, env, values, per_client, aggregates, materialise):
        scope = self._env(env, values)
        from fcore.execution.streaming import _Once, _needed, _client_part
        once = _Once(self, scope)
        roots = [name for _, n in aggregates
                 for name in _free(_client_part(n)) & set(per_client)]
        needed = _needed(per_client, roots + sorted(materialise))
        order = [(name, per_client[name]) for name in per_client if name in needed]
        try:
            if any(not lookup(n.function.uri).has_rule("merge_partials")
                   for _, n in aggregates):
                raise _Unsupported()  # merged on the driver only from the clients' values
            program = _ClientProgram(order, aggregates, materialise, once)
        except _Unsupported:
            return super()._pass(env, values, per_client, aggregates, materialise)
        count = self._count(order, once)
        if not program.has_tf_work or count == 0:  # cheaper here than a round trip
            return super()._pass(env, values, per_client, aggregates, materialise)
        try:
            return self._run_distributed(program, aggregates, materialise, count, once)
        except _ChunkFailed as failed:
            # the client work failed on a worker, which numbers clients within its chunk:
            # the pass runs again here, so that the error names the client by its index in
            # the round, exactly as the other executors report it
            super()._pass(env, values, per_client, aggregates, materialise)
            raise failed.error from None  # it did not fail again here (a random failure)

    def _run_distributed(self, program, aggregates, materialise, count, once):
        from distributed import as_completed
        data = program.client_inputs
        program_future = [_scatter_program(self.client, program)]
        workers = max(1, len(self.client.scheduler_info().get("workers", {})))
        size = max(1, -(-count // (workers * self.chunks_per_worker)))
        chunks = [(start, min(count, start + size)) for start in range(0, count, size)]
        attempts = {chunk: 0 for chunk in chunks}
        futures = {}

        def submit(chunk, fresh=False):
            start, stop = chunk
            if fresh and program_future[0].status != "finished":
                program_future[0] = _scatter_program(self.client, program, fresh=True)
            chunk_data = _chunk_data(self.client, data, start, stop, fresh)
            future = self.client.submit(
                run_chunk, program.digest, program_future[0], program.shared_inputs, chunk_data,
                stop - start, key=f"fcore-chunk-{program.digest[:12]}-{start}-{_token()}",
                pure=False)
            futures[future] = chunk

        for chunk in chunks:
            submit(chunk)
        partials, done = [], 0
        pending = as_completed(list(futures))
        retried = 0
        for future in pending:
            chunk = futures.pop(future)
            try:
                partials.append((chunk, future.result()))
            except ExecutionError as e:  # the client work itself failed: not a worker loss
                raise _ChunkFailed(ExecutionError(
                    f"{e} [in the chunk of clients {chunk[0]}..{chunk[1] - 1}, numbered from 0 "
                    f"within the chunk]")) from None
            except Exception as e:  # noqa: BLE001 - worker lost, data lost, ...
                retried += 1
                if self._resubmit(chunk, attempts, e, submit):
                    pending.add(next(f for f, c in futures.items() if c == chunk))
                continue
            done += chunk[1] - chunk[0]
            if self.progress is not None:
                self.progress(done, count)
        lost = sum(stop - start for (start, stop), _ in self.dropped)
        last_report.clear()
        last_report.update(chunks=len(chunks), retried=retried, dropped_clients=lost)
        if not partials:
            raise DistributedExecutionError(f"every chunk of clients was lost: "
                                            f"{self.dropped[0][1]}")
        if self.dropped:
            warnings.warn(f"distributed executor: {lost} of {count} clients dropped after "
                          f"worker failures: {self.dropped[0][1]}", RuntimeWarning)
        return _merge(partials, aggregates, materialise, program, once)

    def _resubmit(self, chunk, attempts, error, submit):
        """Sends a failed chunk again (its data, and the program if it was lost, placed
        afresh) while it has retries left. Placing them fails too while workers are dead or
        restarting: that is waited out (nannies restart lost workers), within WORKER_WAIT
        seconds per call in all. Returns whether it was sent; if not, its clients are
        dropped."""
        attempts[chunk] += 1
        if attempts[chunk] > self.retries:
            self.dropped.append((chunk, f"{type(error).__name__}: {error}"))
            return False
        if self._wait_until is None:
            self._wait_until = time.monotonic() + WORKER_WAIT
        delay = 0.2
        while True:
            try:
                self.client.wait_for_workers(
                    1, timeout=max(0.1, self._wait_until - time.monotonic()))
                submit(chunk, fresh=True)
                return True
            except Exception as e:  # noqa: BLE001 - no worker yet, or it died meanwhile
                if time.monotonic() >= self._wait_until:
                    self.dropped.append((chunk, f"{type(e).__name__}: {e}"))
                    return False
                time.sleep(delay)
                delay = min(2 * delay, 2.0)


def _free(node):
    from fcore.ir.analysis import free_names
    return free_names(node)


_counter = itertools.count()


def _token():
    """A fresh suffix for task keys (a resubmitted chunk is a new task)."""
    return next(_counter)


class _Unsupported(Exception):
    """A pass this executor cannot ship (it falls back to running it locally)."""


class _ChunkFailed(Exception):
    """A chunk's client work raised `error` on its worker."""

    def __init__(self, error):
        super().__init__(str(error))
        self.error = error


class _ClientProgram:
    """One pass over the clients as a federated computation over a chunk of them:
    `(_in:<_i0=T0@P,...> -> (let _i0=_in._i0,...,<the pass's bindings> in <results>))`,
    whose inputs are the pass's server-side values and client lists, and whose results are
    the pass's aggregations (with what merging chunks needs: the sum of the weights of a
    weighted mean, the count of a mean) and the client values it keeps."""

    def __init__(self, order, aggregates, materialise, once):
        self.inputs = []          # (name, type)
        self.shared_inputs = {}   # name -> value (the same for every chunk)
        self.client_inputs = {}   # name -> (client list, type)
        self._once = once
        self._per_client = {name for name, _ in order}
        locals_ = [(name, nodes.Call(node.function, self._rewrite(node.argument)))
                   for name, node in order]
        self.results = []         # (kind, aggregate name or kept name, uri)
        outputs = []
        for name, node in aggregates:
            uri = node.function.uri
            call = lookup(uri).rule("merge_partials").call(node, self._rewrite)
            locals_.append((name, call))
            outputs.append(nodes.Reference(name, call.type_signature))
            self.results.append(("aggregate", name, uri))
            extra = lookup(uri).rule("merge_partials").weight(call.argument)
            if extra is not None:
                locals_.append((name + "_weight", extra))
                outputs.append(nodes.Reference(name + "_weight", extra.type_signature))
        for name in sorted(materialise):
            outputs.append(nodes.Reference(name, dict(order)[name].type_signature))
            self.results.append(("kept", name, None))
        parameter = core.StructType(self.inputs)
        argument = nodes.Reference("_in", parameter)
        bindings = [(name, nodes.Selection(argument, name=name)) for name, _ in self.inputs]
        body = nodes.Block(bindings + locals_, nodes.Struct([(None, o) for o in outputs]))
        from fcore.computation import Computation
        self.computation = Computation(nodes.Lambda("_in", parameter, body), "client_program")
        self.has_tf_work = bool(self.computation.leaves())
        lengths = _sequence_lengths(self.client_inputs)
        for leaf in self.computation.leaves().values():  # saved with the program: no tf.data
            leaf.prepare_unrolled(lengths)                # pipeline per client on workers
        key = (self.computation.to_text(), tuple(sorted(
            id(leaf) for leaf in self.computation.leaves().values())), tuple(sorted(lengths)))
        cached = _programs.get(key)
        if cached is None:
            from fcore import serialization
            data = serialization.to_bytes(self.computation)
            cached = (data, hashlib.sha256(data).hexdigest())
            _programs[key] = cached
        self.data, self.digest = cached

    def _rewrite(self, node):
        """`node` with its server-side parts replaced by references to program inputs."""
        if node is None:
            return None
        free = _free(node)
        if isinstance(node, nodes.Reference) and node.name in self._per_client:
            return node
        if isinstance(node, nodes.Struct):
            return nodes.Struct([(n, self._rewrite(e)) for n, e in node.elements])
        if free & self._per_client:
            raise _Unsupported()  # per-client values inside another expression
        if isinstance(node.type_signature, core.FunctionType):
            if isinstance(node, (nodes.TFLeaf, nodes.Lambda)) and not free:
                return node
            raise _Unsupported()  # a function value from the server side cannot travel
        if not free and not structure.contains(node.type_signature, structure.is_federated):
            return node  # a closed constant travels in the program text
        type_ = node.type_signature
        if structure.contains(type_, structure.is_federated) and \
                not isinstance(type_, core.FederatedType):
            raise _Unsupported()
        name = f"_i{len(self.inputs)}"
        self.inputs.append((name, type_))
        value = _travelling(self._once(node), type_)
        if isinstance(type_, core.FederatedType) and structure.is_client_list(type_):
            self.client_inputs[name] = (value, type_)
        else:
            self.shared_inputs[name] = value
        return nodes.Reference(name, type_)


def _summed(counted):
    return nodes.Call(nodes.Intrinsic("federated_sum", lookup("federated_sum").function_type(
        counted.type_signature)), counted)


# The "merge_partials" rules: how the driver merges the chunks' results of an aggregation.
# `call(node, rewrite)` is the call each chunk computes (with `rewrite` applied to the
# argument: server values become program inputs); `weight(argument)` is what each chunk
# computes besides its result (the sum of the weights of a weighted mean, the number of
# members of a mean), or None; `merge(node, values, weights, once)` combines the chunks'
# results (and those weights), `once` evaluating server-side parts of the call.
# Aggregations without the rule run their pass on the driver from the clients' values.

class _MergeRule:
    weighted = False

    def call(self, node, rewrite):
        return nodes.Call(node.function, rewrite(node.argument))

    def weight(self, argument):
        return None


class _MergeReduction(_MergeRule):
    """Sums (exactly, for integers), minima and maxima: the reduction of the chunks'. Secure
    sums too: a chunk's secure sum (its clients' values checked against the bound on the
    worker) is its exact sum, as no sum of valid values reaches the protocol's modulus."""

    def __init__(self, reducer):
        self.reducer = reducer

    def merge(self, node, values, weights, once):
        return _combine(node.function.uri, values, node.function.type_signature.result.member,
                        self.reducer)


class _MergeAggregate(_MergeRule):
    """`federated_aggregate`: each chunk folds its clients into `zero` and reports its
    accumulator as it is (the chunk's call has the identity as `report`); the driver merges
    the chunks' accumulators with `merge`, in client order, and runs `report` once."""

    def call(self, node, rewrite):
        if not isinstance(node.argument, nodes.Struct) or len(node.argument.elements) != 5:
            raise _Unsupported()
        accumulator = node.function.type_signature.parameter[1]
        identity = nodes.Lambda("_acc", accumulator, nodes.Reference("_acc", accumulator))
        elements = [(n, rewrite(e)) for n, e in node.argument.elements[:4]]
        argument = nodes.Struct(elements + [(node.argument.elements[4][0], identity)])
        return nodes.Call(nodes.Intrinsic("federated_aggregate", lookup(
            "federated_aggregate").function_type(argument.type_signature)), argument)

    def merge(self, node, values, weights, once):
        from fcore.struct import Struct
        merge, report = (once(e) for _, e in node.argument.elements[3:])
        accumulator = values[0]
        for value in values[1:]:
            accumulator = merge(Struct([(None, accumulator), (None, value)]))
        return report(accumulator)


class _MergeMean(_MergeRule):
    """Means and weighted means: the chunks' means weighted by their weights."""

    weighted = True

    def __init__(self, weighted_mean):
        self.weighted_mean = weighted_mean

    def weight(self, argument):
        if self.weighted_mean:
            counted = argument.elements[1][1] if isinstance(argument, nodes.Struct) else \
                nodes.Selection(argument, index=1)
        else:
            member = argument.type_signature.member
            one = nodes.Lambda("_v", member, nodes.Literal(1.0))
            pair = nodes.Struct([(None, one), (None, argument)])
            counted = nodes.Call(nodes.Intrinsic(
                "federated_map", lookup("federated_map").function_type(pair.type_signature)),
                pair)
        return _summed(counted)

    def merge(self, node, values, weights, once):
        return _weighted(values, weights, node.function.type_signature.result.member)


_programs = LRU(32)  # program text, leaves and lengths -> (saved bytes, digest), per process


def _travelling(value, type_):
    """`value` with its `tf.data.Dataset`s as lists of their elements (a dataset cannot be
    sent to a worker). A dataset of unknown or infinite length keeps the pass on the
    driver."""
    if isinstance(type_, core.SequenceType):
        if isinstance(value, (list, tuple)):
            return value
        from fcore.tracing.tf_function import dataset_elements
        elements = dataset_elements(value, type_.element)
        if elements is None:
            raise _Unsupported()
        return elements
    if isinstance(type_, core.FederatedType):
        if structure.is_client_list(type_) or (type_.placement.name == "SERVER" and
                                               not type_.all_equal):
            return [_travelling(member, type_.member) for member in value]
        return _travelling(value, type_.member)
    if isinstance(type_, core.StructType) and structure.mentions(
            type_, lambda t: isinstance(t, core.SequenceType)):
        from fcore.struct import Struct
        return Struct([(name, _travelling(v, t)) for (name, t), v in zip(type_.items(), value)])
    return value


def _sequence_lengths(client_inputs):
    """The lengths of the sequences (given as lists) in the clients' inputs."""
    lengths = set()

    def walk(value, type_):
        if isinstance(type_, core.SequenceType):
            if isinstance(value, list):
                lengths.add(len(value))
        elif isinstance(type_, core.FederatedType):
            members = value if structure.is_client_list(type_) else [value]
            for member in members:
                walk(member, type_.member)
        elif isinstance(type_, core.StructType):
            for v, t in zip(value, type_):
                walk(v, t)
    for value, type_ in client_inputs.values():
        walk(value, type_)
    return lengths


def _client_operand(node):
    from fcore.execution.streaming import _client_part
    return _client_part(node)


# Placing programs and data on the cluster -------------------------------------------------

_placed_programs = weakref.WeakKeyDictionary()  # client -> {digest: future}
_placed_data = weakref.WeakKeyDictionary()      # client -> {fingerprint: future}, recent first
MAX_PLACED_CHUNKS = 1024  # older chunks are released (a sampled population keeps changing)


def _scatter_program(client, program, fresh=False):
    """The program's bytes on every worker (once per client); `fresh` places them again (a
    worker that held the only copy may have died)."""
    placed = _placed_programs.setdefault(client, LRU(32))
    if fresh or program.digest not in placed:
        placed[program.digest] = client.scatter(program.data, broadcast=True, hash=False)
    return placed[program.digest]


def _chunk_data(client, data, start, stop, fresh):
    """The chunk's client inputs as futures. Each chunk is scattered once and found again by
    a fingerprint of its contents, so the same clients' data stays on the workers across
    rounds; `fresh` scatters it again (after a failure lost it)."""
    placed = _placed_data.setdefault(client, collections.OrderedDict())
    chunk = {}
    for name, (value, type_) in data.items():
        rows = list(value[start:stop])
        key = _fingerprint(rows)
        if fresh or key not in placed:
            placed[key] = client.scatter(rows, hash=False)
        placed.move_to_end(key)
        chunk[name] = placed[key]
    while len(placed) > MAX_PLACED_CHUNKS:
        placed.popitem(last=False)  # dropping the future releases the data on the workers
    return chunk


def _fingerprint(value):
    digest = hashlib.blake2b(digest_size=20)

    def walk(v):
        if isinstance(v, (list, tuple)) or hasattr(v, "items") and not isinstance(v, dict):
            digest.update(b"[")
            for item in (v if isinstance(v, (list, tuple)) else [x for _, x in v.items()]):
                walk(item)
            digest.update(b"]")
        else:
            array = np.asarray(v)
            digest.update(f"{array.dtype}{array.shape}".encode())
            if array.dtype == object:
                digest.update(repr(v).encode())
            else:  # hashed in place, without a copy
                digest.update(memoryview(np.ascontiguousarray(array)).cast("B"))
    walk(value)
    return digest.hexdigest()


# On the workers ------------------------------------------------------------------------------

_worker_programs = LRU(32)  # digest -> loaded computation, per worker process


def run_chunk(digest, program_data, shared, chunk, size):
    """Runs the chunk program on a worker (with the fast executor, so alike clients run
    compiled) for one chunk of `size` clients; returns its results."""
    program = _worker_programs.get(digest)
    if program is None:
        if hashlib.sha256(program_data).hexdigest() != digest:
            raise DistributedExecutionError("the client program arrived altered")
        from fcore import serialization
        program = _worker_programs[digest] = serialization.from_bytes(program_data)
    from fcore.execution.context import execution_context
    from fcore.struct import Struct
    names = program.type_signature.parameter.names()
    values = {**shared, **chunk}
    with execution_context("fast", num_clients=size):
        result = program(Struct([(name, values[name]) for name in names]))
    return list(result)


def _merge(partials, aggregates, materialise, program, once):
    """The pass's results from the chunks' results."""
    partials.sort(key=lambda item: item[0][0])
    results, position = {}, 0
    for kind, name, uri in program.results:
        if kind == "kept":
            results[name] = [v for _, outputs in partials for v in outputs[position]]
            position += 1
            continue
        node = dict(aggregates)[name]
        values = [outputs[position] for _, outputs in partials]
        merge = lookup(uri).rule("merge_partials")
        if merge.weighted:
            weights = [float(outputs[position + 1]) for _, outputs in partials]
            results[name] = merge.merge(node, values, weights, once)
            position += 2
        else:
            results[name] = merge.merge(node, values, None, once)
            position += 1
    return results


def _weighted(means, weights, type_):
    kept = [(m, w) for m, w in zip(means, weights) if w != 0]
    leaf_types = structure.leaf_types(type_)
    if not kept:
        return structure.rebuild(type_, [impls._cast(t, np.full(t.shape, np.nan))
                                      for t in leaf_types])
    total = sum(w for _, w in kept)
    leaves = []
    for position, t in enumerate(leaf_types):
        wide = np.complex128 if t.dtype.kind == "c" else np.float64
        acc = sum(np.asarray(structure.leaves(m)[position], dtype=wide) * w for m, w in kept)
        leaves.append(impls._cast(t, acc / total))
    return structure.rebuild(type_, leaves)


def _combine(uri, values, type_, reduce):
    leaf_types = structure.leaf_types(type_)
    leaves = []
    for position, t in enumerate(leaf_types):
        parts = [np.asarray(structure.leaves(v)[position]) for v in values]
        impls.same_shapes(uri, *parts)
        if reduce is np.add and t.dtype.kind in "iu":  # exactly: no wrap-around
            leaves.append(impls.exact_sum(t, sum(impls.exact(p) for p in parts), uri))
            continue
        acc = parts[0]
        for part in parts[1:]:
            acc = reduce(acc, part)
        leaves.append(impls._cast(t, acc))
    return structure.rebuild(type_, leaves)


lookup("federated_sum").def_rule("merge_partials", _MergeReduction(np.add))
lookup("federated_min").def_rule("merge_partials", _MergeReduction(np.minimum))
lookup("federated_max").def_rule("merge_partials", _MergeReduction(np.maximum))
lookup("federated_mean").def_rule("merge_partials", _MergeMean(weighted_mean=False))
lookup("federated_weighted_mean").def_rule("merge_partials", _MergeMean(weighted_mean=True))
lookup("federated_secure_sum").def_rule("merge_partials", _MergeReduction(np.add))
lookup("federated_secure_sum_bitwidth").def_rule("merge_partials", _MergeReduction(np.add))
lookup("federated_aggregate").def_rule("merge_partials", _MergeAggregate())


def run(computation, argument, num_clients, context):
    client = connect(context.dask)
    interpreter = DistributedInterpreter(client, num_clients, computation.name,
                                         context.progress)
    return interpreter.run(computation, argument)


register_executor("dask", run, needs="dask")


__all__ = ["DistributedExecutionError", "SchedulerUnreachableError", "connect", "run",
           "run_chunk"]
