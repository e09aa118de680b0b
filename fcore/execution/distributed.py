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

import hashlib
import threading
import warnings
import weakref

import numpy as np

from fcore.execution import accumulators, intrinsic_impls as impls
from fcore.execution.errors import ExecutionError
from fcore.execution.reference import Environment, Interpreter
from fcore.execution.streaming import StreamingInterpreter, _elements, _is_clients
from fcore.ir import nodes
from fcore.types import core

CONNECT_TIMEOUT = 10  # seconds to reach a scheduler before giving up
_clients: dict = {}
last_report: dict = {}  # of the latest distributed pass: chunks, retried, dropped clients
_lock = threading.Lock()


class DistributedExecutionError(ExecutionError):
    """The cluster could not be reached or could not run the work."""


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
                raise DistributedExecutionError(
                    f"Cannot reach the Dask scheduler at {dask} within {CONNECT_TIMEOUT} s: "
                    f"{type(e).__name__}: {e}") from None
            _clients[dask] = client
        return client


class DistributedInterpreter(StreamingInterpreter):
    """Runs passes over clients on a Dask cluster (see the module doc)."""

    lower = False  # passes go to the workers (which run their chunks with the fast path)

    def __init__(self, client, *args, retries=2, chunks_per_worker=4, **kwargs):
        super().__init__(*args, **kwargs)
        self.client = client
        self.retries = retries
        self.chunks_per_worker = chunks_per_worker
        self.dropped = []

    def _pass(self, env, values, per_client, aggregates, materialise):
        scope = self._env(env, values)
        from fcore.execution.streaming import _Once, _needed, _client_part
        once = _Once(self, scope)
        roots = [name for _, n in aggregates
                 for name in _free(_client_part(n)) & set(per_client)]
        needed = _needed(per_client, roots + sorted(materialise))
        order = [(name, per_client[name]) for name in per_client if name in needed]
        try:
            if any(n.function.uri == "federated_aggregate" for _, n in aggregates):
                raise _Unsupported()  # its accumulate/merge/report are server-side functions
            program = _ClientProgram(order, aggregates, materialise, once)
        except _Unsupported:
            return super()._pass(env, values, per_client, aggregates, materialise)
        if not program.has_tf_work:  # IR-only work is cheaper here than a round trip
            return super()._pass(env, values, per_client, aggregates, materialise)
        count = self._count(order, once)
        specs = [(node.function.uri, node.function.type_signature,
                  [] if node.function.uri == "federated_weighted_mean" else
                  [once(e) for e in _elements(node.argument)[1:]])
                 for _, node in aggregates]
        return self._run_distributed(program, specs, aggregates, materialise, count)

    def _run_distributed(self, program, specs, aggregates, materialise, count):
        from distributed import as_completed
        data = program.client_inputs
        program_future = _scatter_program(self.client, program)
        workers = max(1, len(self.client.scheduler_info().get("workers", {})))
        size = max(1, -(-count // (workers * self.chunks_per_worker)))
        chunks = [(start, min(count, start + size)) for start in range(0, count, size)]
        attempts = {chunk: 0 for chunk in chunks}
        futures = {}

        def submit(chunk, fresh=False):
            start, stop = chunk
            chunk_data = _chunk_data(self.client, data, start, stop, fresh)
            future = self.client.submit(
                run_chunk, program.digest, program_future, program.shared_inputs, chunk_data,
                specs, start, stop, key=f"fcore-chunk-{program.digest[:12]}-{start}-"
                                        f"{_token()}", pure=False)
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
            except ExecutionError:
                raise
            except Exception as e:  # noqa: BLE001 - worker lost, data lost, ...
                attempts[chunk] += 1
                retried += 1
                if attempts[chunk] > self.retries:
                    self.dropped.append((chunk, f"{type(e).__name__}: {e}"))
                    continue
                submit(chunk, fresh=True)
                pending.add(next(f for f, c in futures.items() if c == chunk))
                continue
            done += chunk[1] - chunk[0]
            if self.progress is not None:
                self.progress(done, count)
        lost = sum(stop - start for (start, stop), _ in self.dropped)
        last_report.clear()
        last_report.update(chunks=len(chunks), retried=retried, dropped_clients=lost)
        if self.dropped:
            warnings.warn(f"distributed executor: {lost} of {count} clients dropped after "
                          f"worker failures: {self.dropped[0][1]}", RuntimeWarning)
        return _merge(partials, aggregates, specs, materialise, program, count)


def _free(node):
    from fcore.ir.analysis import free_names
    return free_names(node)


_counter = iter(range(1 << 62))


def _token():
    return next(_counter)


class _Unsupported(Exception):
    """A pass this executor cannot ship (it falls back to running it locally)."""


class _ClientProgram:
    """One pass's per-client work as an fcore computation from one client's inputs to the
    aggregations' operands and the kept values:
    `(_in:<_i0=T0,...> -> (let _i0=_in._i0,...,<per-client bindings> in <outputs>))`."""

    def __init__(self, order, aggregates, materialise, once):
        self.inputs = []          # (name, member type)
        self.shared_inputs = {}   # name -> value (the same for every client)
        self.client_inputs = {}   # name -> (value holding per-client lists, its type)
        self._once = once
        self._per_client = {name for name, _ in order}
        locals_ = [(name, self._member_call(node)) for name, node in order]
        outputs = [self._member(_client_operand(node)) for _, node in aggregates] + \
            [nodes.Reference(name, dict(order)[name].type_signature.member)
             for name in sorted(materialise)]
        self.kept = sorted(materialise)
        parameter = core.StructType(self.inputs)
        argument = nodes.Reference("_in", parameter)
        bindings = [(name, nodes.Selection(argument, name=name)) for name, _ in self.inputs]
        body = nodes.Struct([(None, o) for o in outputs])
        if bindings or locals_:
            body = nodes.Block(bindings + locals_, body)
        from fcore.tracing.computation import Computation
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

    def _member_call(self, node):
        uri = node.function.uri
        if uri == "federated_zip_at_clients":
            return self._member(node.argument)
        if uri == "federated_eval_at_clients":
            return nodes.Call(self._function(node.argument))
        if not isinstance(node.argument, nodes.Struct):
            raise _Unsupported()
        fn, value = (e for _, e in node.argument.elements)
        return nodes.Call(self._function(fn), self._member(value))

    def _function(self, node):
        if isinstance(node, (nodes.TFLeaf, nodes.Lambda)) and not _free(node):
            return node
        raise _Unsupported()  # a function value from the server side cannot travel

    def _member(self, node):
        if isinstance(node, nodes.Reference) and node.name in self._per_client:
            return nodes.Reference(node.name, _member_type(node.type_signature))
        if isinstance(node, nodes.Struct):
            return nodes.Struct([(n, self._member(e)) for n, e in node.elements])
        if isinstance(node.type_signature, core.FunctionType):
            return self._function(node)
        name = f"_i{len(self.inputs)}"
        member_type = _member_type(node.type_signature)
        self.inputs.append((name, member_type))
        value = self._once(node)
        if _has_client_list(node.type_signature):
            self.client_inputs[name] = (value, node.type_signature)
        else:
            self.shared_inputs[name] = impls._unplace(value, node.type_signature, None) \
                if _has_federated(node.type_signature) else value
        return nodes.Reference(name, member_type)


_programs: dict = {}  # program text and leaves -> (saved bytes, digest), per process


def _sequence_lengths(client_inputs):
    """The lengths of the sequences (given as lists) in the clients' inputs."""
    lengths = set()

    def walk(value, type_):
        if isinstance(type_, core.SequenceType):
            if isinstance(value, list):
                lengths.add(len(value))
        elif isinstance(type_, core.FederatedType):
            members = value if _is_clients(type_) else [value]
            for member in members:
                walk(member, type_.member)
        elif isinstance(type_, core.StructType):
            for v, t in zip(value, type_):
                walk(v, t)
    for value, type_ in client_inputs.values():
        walk(value, type_)
    return lengths


def _member_type(type_):
    if isinstance(type_, core.FederatedType):
        return type_.member
    if isinstance(type_, core.StructType):
        return core.StructType([(n, _member_type(t)) for n, t in type_.items()])
    return type_


def _has_client_list(type_):
    if isinstance(type_, core.FederatedType):
        return _is_clients(type_)
    return isinstance(type_, core.StructType) and any(_has_client_list(t) for t in type_)


def _has_federated(type_):
    if isinstance(type_, core.FederatedType):
        return True
    return isinstance(type_, core.StructType) and any(_has_federated(t) for t in type_)


def _client_operand(node):
    from fcore.execution.streaming import _client_part
    return _client_part(node)


# Placing programs and data on the cluster -------------------------------------------------

_placed_programs = weakref.WeakKeyDictionary()  # client -> {digest: future}
_placed_data = weakref.WeakKeyDictionary()      # client -> {fingerprint: future}


def _scatter_program(client, program):
    placed = _placed_programs.setdefault(client, {})
    if program.digest not in placed:
        placed[program.digest] = client.scatter(program.data, broadcast=True, hash=False)
    return placed[program.digest]


def _chunk_data(client, data, start, stop, fresh):
    """The chunk's client inputs as futures. Each chunk is scattered once and found again by
    a fingerprint of its contents, so the same clients' data stays on the workers across
    rounds; `fresh` scatters it again (after a failure lost it)."""
    placed = _placed_data.setdefault(client, {})
    chunk = {}
    for name, (value, type_) in data.items():
        rows = [impls._unplace(value, type_, i) for i in range(start, stop)]
        key = _fingerprint(rows)
        if fresh or key not in placed:
            placed[key] = client.scatter(rows, hash=False)
        chunk[name] = placed[key]
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
            digest.update(array.tobytes() if array.dtype != object else repr(v).encode())
    walk(value)
    return digest.hexdigest()


# On the workers ------------------------------------------------------------------------------

_worker_programs: dict = {}  # digest -> loaded computation, per worker process


def run_chunk(digest, program_data, shared, chunk, specs, start, stop):
    """Runs the client program for clients `start..stop` on a worker; returns partial
    accumulators (one per aggregation) and the kept values, in order."""
    program = _worker_programs.get(digest)
    if program is None:
        if hashlib.sha256(program_data).hexdigest() != digest:
            raise DistributedExecutionError("the client program arrived altered")
        from fcore import serialization
        program = _worker_programs[digest] = serialization.from_bytes(program_data)
    accs = []
    for uri, fn_type, server_parts in specs:
        acc = accumulators.start(uri, fn_type, server_parts)
        if hasattr(acc, "first_client"):
            acc.first_client = start
        accs.append(acc)
    interpreter = StreamingInterpreter(None, "client program")
    function = interpreter.evaluate(program.ir, Environment())
    parameter = program.type_signature.parameter
    kept = []
    from fcore.struct import Struct
    for offset in range(stop - start):
        interpreter.client_index = start + offset
        values = dict(shared)
        for name, rows in chunk.items():
            values[name] = rows[offset]
        argument = Struct([(name, values[name]) for name in parameter.names()])
        outputs = list(function(argument))
        for acc, operand in zip(accs, outputs):
            acc.add(operand)
        kept.append(outputs[len(accs):])
    return accs, kept


def _merge(partials, aggregates, specs, materialise, program, count):
    partials.sort(key=lambda item: item[0][0])
    merged = []
    for index, (uri, fn_type, server_parts) in enumerate(specs):
        acc = accumulators.start(uri, fn_type, server_parts)
        for _, (accs, _) in partials:
            acc.merge(accs[index])
        merged.append(acc)
    results = {name: acc.result() for (name, _), acc in zip(aggregates, merged)}
    for position, name in enumerate(program.kept):
        results[name] = [row[position] for _, (_, kept) in partials for row in kept]
    return results


def run(computation, argument, num_clients, progress=None, dask=None):
    client = connect(dask)
    interpreter = DistributedInterpreter(client, num_clients, computation.name, progress)
    function = interpreter.evaluate(computation.ir, Environment())
    return function(argument)


__all__ = ["DistributedExecutionError", "connect", "run", "run_chunk", "Interpreter"]
