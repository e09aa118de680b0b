"""TF leaves: a Python function traced by `tf.function` over the fcore parameter type, run on
runtime values (NumPy values, `fcore.Struct`s, lists or `tf.data.Dataset`s for sequences)."""

from __future__ import annotations

import collections
import contextlib
import functools
import inspect
import threading
import weakref

import numpy as np

from fcore import structure
from fcore.struct import Struct, pack, python_items
from fcore.types import core


# Leaves that use TF variables (a Keras model they train) share state with each other: their
# runs, from any thread, are serialized by this lock.
STATEFUL_LOCK = threading.RLock()


class TFFunction:
    """A traced TensorFlow function with an fcore `type_signature`."""

    def __init__(self, fn, parameter_type, name):
        import tensorflow as tf
        self.name = name
        self.parameter_type = parameter_type
        self._fn = fn
        self._result_type = None
        specs = [] if parameter_type is None else [_spec(t) for t in _leaves(parameter_type)]

        def traced(*flat):
            argument = None if parameter_type is None else \
                _unflatten(parameter_type, list(flat), for_python=True)
            result = _call_python(fn, parameter_type, argument)
            result = _to_tensors(result, tf)
            self._result_type = _type_of(result)
            return [leaf for leaf in _flatten_output(result)]

        self._tf_function = tf.function(traced, input_signature=specs, autograph=True)
        try:
            self._concrete = self._tf_function.get_concrete_function()
        except Exception as e:  # noqa: BLE001 - TF's errors for variables made in the body
            if _creates_variables(e):
                raise TypeError(_VARIABLES_MESSAGE) from e
            raise
        self.type_signature = core.FunctionType(parameter_type, self._result_type)
        self._unrolled = {}  # sequence lengths -> concrete function (or None if it failed)
        self._unrolled_functions = {}  # sequence lengths -> its tf.function (for saving)
        self._looped = {}  # (padded shapes, key) -> looped concrete function (or None)

    def run(self, value, unroll=False):
        """Runs on a runtime value of the parameter type; returns a runtime value.

        With `unroll`, sequences given as short lists run in a variant traced for those
        lengths, where each sequence is a Python list of its elements, so the loop over them
        is unrolled into the graph instead of iterating a `tf.data.Dataset` (which costs
        milliseconds per call). The variant is traced once per combination of lengths.

        A leaf that uses TF variables (a model it trains) runs under `STATEFUL_LOCK`, so
        calls from several threads do not interleave their assignments and reads."""
        with self.exclusive():
            return self._run(value, unroll)

    def exclusive(self):
        """A context that holds `STATEFUL_LOCK` if this leaf uses TF variables."""
        stateful = getattr(self, "_stateful", None)
        if stateful is None:
            stateful = self._stateful = bool(self.captured_variables())
        return STATEFUL_LOCK if stateful else contextlib.nullcontext()

    def _run(self, value, unroll):
        leaves = [] if self.parameter_type is None else _leaves(self.parameter_type)
        values = [] if self.parameter_type is None else _flatten(self.parameter_type, value)
        if unroll and any(isinstance(t, core.SequenceType) for t in leaves):
            values = [_materialized(v, t) for v, t in zip(values, leaves)]
            concrete = self._unrolled_for(leaves, values)
            if concrete is not None:
                flat = [leaf for v, t in zip(values, leaves) for leaf in _unrolled_input(v, t)]
                outputs = concrete(*self._tensors(flat))
                return _unflatten(self.type_signature.result, list(outputs), for_python=False)
        flat = [_to_tf_input(v, t) for v, t in zip(values, leaves)]
        outputs = self._concrete(*self._tensors(flat))
        return _unflatten(self.type_signature.result, list(outputs), for_python=False)

    def _tensors(self, flat):
        """`flat` with large arrays as tensors, reusing the tensors of the previous call for
        the same array objects (the broadcast weights every client of a round receives)."""
        import tensorflow as tf
        previous = getattr(self, "_tensor_cache", {})
        cache, out = {}, []
        for value in flat:
            if isinstance(value, np.ndarray) and value.size >= 1024:
                hit = previous.get(id(value))
                tensor = hit[1] if hit is not None and hit[0] is value else \
                    tf.convert_to_tensor(value)
                cache[id(value)] = (value, tensor)
                out.append(tensor)
            else:
                out.append(value)
        self._tensor_cache = cache
        return out

    def _unrolled_for(self, leaves, values):
        lengths = []
        for v, t in zip(leaves, values):
            if isinstance(v, core.SequenceType):
                if not isinstance(t, list) or len(t) > MAX_UNROLL:
                    return None
                lengths.append(len(t))
        key = tuple(lengths)
        if key not in self._unrolled:
            self._unrolled[key] = self._trace_unrolled(leaves, key)
        return self._unrolled[key]

    def _trace_unrolled(self, leaves, lengths):
        import tensorflow as tf
        key_lengths = tuple(lengths)
        lengths = list(lengths)
        specs, shapes = [], []
        for t in leaves:
            if isinstance(t, core.SequenceType):
                count = lengths.pop(0)
                element = _leaves(t.element)
                specs += [_spec(e) for _ in range(count) for e in element]
                shapes.append((t, count, len(element)))
            else:
                specs.append(_spec(t))
                shapes.append((t, None, 1))

        def traced(*flat):
            flat, leaf_values = list(flat), []
            for t, count, width in shapes:
                if count is None:
                    leaf_values.append(flat.pop(0))
                else:
                    leaf_values.append(UnrolledSequence([_to_nest(t.element, _unflatten(
                        t.element, [flat.pop(0) for _ in range(width)], for_python=False,
                        keep_tensors=True)) for _ in range(count)], t.element))
            return self._result_of(leaf_values, "unrolled")
        function = tf.function(traced, input_signature=specs, autograph=True)
        try:
            concrete = function.get_concrete_function()
        except Exception:  # noqa: BLE001 - code that needs a real dataset keeps using one
            return None
        self._unrolled_functions[tuple(key_lengths)] = function
        return concrete

    def _result_of(self, leaf_values, variant):
        """The flat result of the Python function on the parameter's leaves `leaf_values`,
        while tracing a variant; it must have the leaf's result type."""
        import tensorflow as tf
        argument = _unflatten(self.parameter_type, leaf_values, for_python=True)
        result = _to_tensors(_call_python(self._fn, self.parameter_type, argument), tf)
        if _type_of(result) != self.type_signature.result:
            raise TypeError(f"the {variant} variant has another result type")
        return list(_flatten_output(result))

    def prepare_unrolled(self, lengths):
        """Traces the unrolled variants for a parameter with one sequence, for each length
        in `lengths` (so that they can be saved with the leaf)."""
        leaves = [] if self.parameter_type is None else _leaves(self.parameter_type)
        if sum(isinstance(t, core.SequenceType) for t in leaves) != 1:
            return
        for length in sorted(set(lengths)):
            if length <= MAX_UNROLL and (length,) not in self._unrolled:
                self._unrolled[(length,)] = self._trace_unrolled(leaves, (length,))

    def looped_variant(self, padded, resize, key):
        """The variant of a leaf whose one sequence parameter is given as columns of batches,
        traced once for any number of batches (`LoopedSequence`): in place of the sequence it
        takes, per element leaf, a `[batches, *padded]` tensor, then the client's first batch,
        its number of full batches (of the `padded` shape) and whether a partial last batch
        follows (int32 scalars), then per element leaf the last batch's sizes along the
        dimensions its type leaves unknown. `resize(tensor, dims, sizes)` gives the partial
        batch at its sizes; `key` names `resize` (XLA's dynamic dimensions or a slice).
        None when the leaf's code cannot run on it (it then runs unrolled)."""
        if (padded, key) not in self._looped:
            self._looped[(padded, key)] = self._trace_looped(padded, resize)
        return self._looped[(padded, key)]

    def _trace_looped(self, padded, resize):
        import tensorflow as tf
        leaves = [] if self.parameter_type is None else _leaves(self.parameter_type)
        sequences = [t for t in leaves if isinstance(t, core.SequenceType)]
        if len(sequences) != 1 or not _for_loop_registered():
            return None
        element = _leaves(sequences[0].element)
        if any(not isinstance(e, core.TensorType) or e.shape is None or
               len(e.shape) != len(p) for e, p in zip(element, padded)):
            return None
        dims = [tuple(d for d, size in enumerate(e.shape) if size is None) for e in element]
        specs = []
        for t in leaves:
            if isinstance(t, core.SequenceType):
                specs += [tf.TensorSpec((None,) + tuple(p), _spec(e).dtype)
                          for e, p in zip(element, padded)]
                specs += [tf.TensorSpec([], tf.int32)] * 3
                specs += [tf.TensorSpec([len(d)], tf.int32) for d in dims]
            else:
                specs.append(_spec(t))

        def traced(*flat):
            flat, leaf_values = list(flat), []
            for t in leaves:
                if not isinstance(t, core.SequenceType):
                    leaf_values.append(flat.pop(0))
                    continue
                columns = [flat.pop(0) for _ in element]
                start, full, last = flat.pop(0), flat.pop(0), flat.pop(0)
                sizes = [flat.pop(0) for _ in element]
                leaf_values.append(LoopedSequence(
                    t.element, columns, start, full, last,
                    functools.partial(_partial_batch, resize, dims, sizes)))
            return self._result_of(leaf_values, "looped")
        function = tf.function(traced, input_signature=specs, autograph=True)
        try:
            return function.get_concrete_function()
        except Exception:  # noqa: BLE001 - code that needs a real dataset or a list
            return None

    def unrolled_variants(self):
        """`{lengths: tf.function}` of the unrolled variants traced so far."""
        return dict(self._unrolled_functions)

    def saveable_function(self):
        """The `tf.function` to save (flat inputs, the leaves of the parameter type)."""
        return self._tf_function

    def captured_variables(self):
        return self._concrete.variables

    def __repr__(self):
        return f"<TF computation {self.name}: {self.type_signature}>"


class SavedTFFunction(TFFunction):
    """A TF leaf loaded from a SavedModel (see `fcore.save`): runs the restored graph, and
    the restored unrolled variants where they fit."""

    def __init__(self, name, type_signature, function, keep_alive=None, unrolled=None):
        self.name = name
        self.type_signature = type_signature
        self.parameter_type = type_signature.parameter
        self._concrete = function
        self._tf_function = function
        self._keep_alive = keep_alive  # the restored module owns the variables
        self._unrolled = dict(unrolled or {})
        self._unrolled_functions = {}

    def _trace_unrolled(self, leaves, lengths):
        # no Python to trace: only the saved variants exist. Without sequences the variant
        # is the saved function itself, which takes the parameter's flat leaves too.
        return self._concrete if not lengths else None

    def prepare_unrolled(self, lengths):
        pass

    def looped_variant(self, padded, resize, key):
        return None  # no Python to trace

    def captured_variables(self):
        return list(getattr(self._keep_alive, "captured", []))


_VARIABLES_MESSAGE = (
    "expected a tf_computation that creates no tf.Variable, found one created in its body "
    "(TensorFlow keeps one variable across calls and cannot start it from the "
    "computation's arguments). Compute with tensors instead: "
    "take the values as they come (`w = tf.identity(model['w'])`), differentiate with "
    "`tf.GradientTape` (`tape.watch(w)`), and return the new values "
    "(`w - learning_rate * grad`); or create the variables once, outside the computation, "
    "and `assign` the arguments to them inside it (as learning's FedAvg does with its "
    "Keras model).")


def _creates_variables(error):
    text = f"{type(error).__name__}: {error}"
    return "Unliftable" in type(error).__name__ or "tf.Variable" in text or \
        "could not be lifted" in text


def _call_python(fn, parameter_type, argument):
    if parameter_type is None:
        return fn()
    if isinstance(parameter_type, core.StructType) and _spreads(fn, len(parameter_type)):
        from fcore.tracing.calls import call_unpacked
        elements = [v for _, v in python_items(argument)[0]]  # any container, in order
        return call_unpacked(fn, list(zip(parameter_type.names(), elements)))
    return fn(argument)


def _spreads(fn, count):
    """Whether `fn` takes the elements of a `count`-element struct as separate arguments."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY,
                                                      p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind == p.VAR_POSITIONAL for p in parameters):
        return count != 1
    return len(positional) == count and count != 1


def _leaves(type_):
    """The tensor and sequence types of `type_`, in order."""
    leaves = structure.type_leaves(type_)
    for leaf in leaves:
        if not isinstance(leaf, (core.TensorType, core.SequenceType)):
            raise TypeError(f"A TF computation cannot take or return a value of type {type_}; "
                            f"only tensors, sequences and structs of them.")
    return leaves


def _spec(type_):
    import tensorflow as tf
    if isinstance(type_, core.SequenceType):
        return tf.data.DatasetSpec(element_spec(type_.element))
    dtype = tf.string if type_.dtype.kind == "U" else tf.as_dtype(type_.dtype)
    return tf.TensorSpec(type_.shape, dtype)


def element_spec(type_):
    """The `tf.data` element spec for an fcore type: OrderedDicts for named structs, tuples
    for unnamed ones."""
    if isinstance(type_, core.TensorType):
        return _spec(type_)
    if isinstance(type_, core.StructType):
        names = type_.names()
        if all(n is not None for n in names) and names:
            return collections.OrderedDict((n, element_spec(t)) for n, t in type_.items())
        if all(n is None for n in names):
            return tuple(element_spec(t) for t in type_)
    raise TypeError(f"A sequence element of type {type_} cannot be a tf.data element; use "
                    f"tensors and structs whose elements are all named or all unnamed.")


_flatten = structure.flatten


def _unflatten(type_, flat, for_python, keep_tensors=False):
    """Rebuilds a value of `type_` from its leaves (consumed from the front of `flat`)."""
    if isinstance(type_, core.StructType):
        elements = [(name, _unflatten(t, flat, for_python, keep_tensors))
                    for name, t in type_.items()]
        if for_python:
            return pack(type_.python_container, elements)
        return Struct(elements)
    leaf = flat.pop(0)
    if for_python or keep_tensors or isinstance(type_, core.SequenceType):
        return leaf
    return _numpy(leaf)


MAX_UNROLL = 64  # longer sequences iterate a tf.data.Dataset in the graph


class UnrolledSequence(list):
    """A short sequence as its elements, in the unrolled variant of a TF leaf: what code
    written for a `tf.data.Dataset` does with it (`for`, `reduce`, `map`, `take`, `skip`,
    `enumerate`, `cardinality`, `element_spec`) runs as plain graph ops, with no `tf.data`
    pipeline per call. Anything else (`filter`, `batch`, ...) is not here: the leaf then
    runs on a real dataset, with the same results."""

    def __init__(self, elements, element_type=None):
        super().__init__(elements)
        self._element_type = element_type

    def reduce(self, initial_state, reduce_func):
        state = initial_state
        for element in self:
            state = reduce_func(state, element)
        return state

    def map(self, map_func, *args, **kwargs):
        return UnrolledSequence(
            [map_func(*e) if isinstance(e, tuple) else map_func(e) for e in self])

    def take(self, count):
        return UnrolledSequence(self[:_static_count(count, len(self))], self._element_type)

    def skip(self, count):
        return UnrolledSequence(self[_static_count(count, len(self)):], self._element_type)

    def enumerate(self, start=0):
        import tensorflow as tf
        return UnrolledSequence([(tf.constant(start + i, tf.int64), e)
                                 for i, e in enumerate(self)])

    def cardinality(self):
        import tensorflow as tf
        return tf.constant(len(self), tf.int64)

    @property
    def element_spec(self):
        if self._element_type is None:
            raise AttributeError("element_spec is not known after map")
        return element_spec(self._element_type)


class LoopedSequence:
    """A sequence of any length, in the looped variant of a TF leaf
    (`TFFunction.looped_variant`): the client's batches are the rows `start, start + 1, ...`
    of `columns`, first `full` batches of the padded shape, then `last` (0 or 1) partial
    batch, which `partial(leaves)` gives at its sizes. What code written for a
    `tf.data.Dataset` does with it (`for` through AutoGraph, `reduce`, `map`, `take`,
    `skip`, `enumerate`, `cardinality`, `element_spec`) becomes graph loops, with no
    `tf.data` pipeline, so one trace serves every number of batches. Anything else fails
    the trace, and the leaf then runs unrolled, with the same results."""

    def __init__(self, element_type, columns, start, full, last, partial, offset=0,
                 transforms=()):
        self._element_type, self._columns, self._partial = element_type, columns, partial
        self._start, self._full, self._last = start, full, last
        self._offset = offset  # the index of this sequence's first element in the original
        # (function (index, element) -> element, offset when added): map, enumerate
        self._transforms = tuple(transforms)

    def _with(self, **changes):
        fields = dict(element_type=self._element_type, columns=self._columns,
                      start=self._start, full=self._full, last=self._last,
                      partial=self._partial, offset=self._offset,
                      transforms=self._transforms)
        fields.update(changes)
        return LoopedSequence(**fields)

    def _element(self, j, partial):
        """The `j`-th element (a tensor), a full batch or the partial last one."""
        import tensorflow as tf
        leaves = [tf.gather(column, self._start + j) for column in self._columns]
        if partial:
            leaves = self._partial(leaves)
        value = _to_nest(self._element_type, _unflatten(
            self._element_type, leaves, for_python=False, keep_tensors=True))
        for transform, base in self._transforms:  # indices count from where it was added
            value = transform(self._offset + j - base, value)
        return value

    def _loops(self):
        """`(count, partial, first index)` of the two loops that visit the elements: the
        full batches, then the partial last batch (if any)."""
        return (self._full, False, 0), (self._last, True, self._full)

    def reduce(self, initial_state, reduce_func):
        import tensorflow as tf
        state = tf.nest.map_structure(tf.convert_to_tensor, initial_state)
        for count, partial, base in self._loops():
            def body(j, flat, base=base, partial=partial):
                new = reduce_func(tf.nest.pack_sequence_as(state, flat),
                                  self._element(base + j, partial))
                tf.nest.assert_same_structure(state, new)
                return j + 1, tf.nest.flatten(tf.nest.map_structure(tf.convert_to_tensor, new))
            _, flat = tf.while_loop(lambda j, _: j < count, body,
                                    (tf.constant(0), tf.nest.flatten(state)))
            state = tf.nest.pack_sequence_as(state, flat)
        return state

    def map(self, map_func, *args, **kwargs):
        def apply(index, element):
            return map_func(*element) if isinstance(element, tuple) else map_func(element)
        return self._with(transforms=self._transforms + ((apply, self._offset),))

    def enumerate(self, start=0):
        import tensorflow as tf

        def numbered(index, element):
            return tf.cast(index, tf.int64) + start, element
        return self._with(transforms=self._transforms + ((numbered, self._offset),))

    def take(self, count):
        import tensorflow as tf
        count = self._count(count)
        return self._with(full=tf.minimum(self._full, count),
                          last=tf.where(count > self._full, self._last, 0))

    def skip(self, count):
        import tensorflow as tf
        count = self._count(count)
        skipped = tf.minimum(count, self._full)
        return self._with(start=self._start + skipped, full=self._full - skipped,
                          last=tf.where(count > self._full, 0, self._last),
                          offset=self._offset + skipped)

    def _count(self, count):
        """A take or skip count as an int32 tensor; a negative one means all."""
        import tensorflow as tf
        count = tf.cast(count, tf.int32)
        return tf.where(count < 0, self._full + self._last, count)

    def cardinality(self):
        import tensorflow as tf
        return tf.cast(self._full + self._last, tf.int64)

    @property
    def element_spec(self):
        if self._transforms:
            raise AttributeError("element_spec is not known after map or enumerate")
        return element_spec(self._element_type)

    def __iter__(self):
        raise TypeError("a looped sequence is iterated by AutoGraph's `for` or `reduce`")

    def __len__(self):
        raise TypeError("a looped sequence has no Python length")


def _looped_for(sequence, extra_test, body, get_state, set_state, symbol_names, opts):
    """AutoGraph's `for` over a `LoopedSequence`: two graph loops over the same body, one over
    the full batches and one over the partial last batch (0 or 1 times)."""
    for count, partial, base in sequence._loops():
        _visit(sequence, count, partial, base, extra_test, body, get_state, set_state,
               symbol_names, opts)


def _visit(sequence, count, partial, base, extra_test, body, get_state, set_state,
           symbol_names, opts):
    """One graph loop of `_looped_for`, AutoGraph's `while` with the index as a loop variable
    (not `for` over `tf.range(count)`, whose range op XLA compiles only for a constant
    count)."""
    import tensorflow as tf
    from tensorflow.python.autograph.operators import control_flow
    j = tf.constant(0)

    def state():
        return (j,) + tuple(get_state())

    def restore(values):
        nonlocal j
        j, *rest = values
        set_state(rest)

    def step():
        nonlocal j
        body(sequence._element(base + j, partial))
        j += 1

    def test():
        more = j < count
        return more if extra_test is None else tf.cond(more, extra_test, lambda: False)
    control_flow.while_stmt(test, step, state, restore,
                            ("<looped batch index>",) + tuple(symbol_names), opts)


@functools.cache
def _for_loop_registered():
    """Whether AutoGraph sends `for` loops over a `LoopedSequence` to `_looped_for`."""
    try:
        from tensorflow.python.autograph.operators import control_flow
        control_flow.for_loop_registry.register(LoopedSequence, _looped_for)
    except (ImportError, AttributeError):
        return False
    return True


def _partial_batch(resize, dims, sizes, leaves):
    """A client's partial last batch: each element leaf at its sizes along `dims` (of
    unknown size in the graph, whatever `resize` says of them)."""
    out = []
    for leaf, d, s in zip(leaves, dims, sizes):
        if d:
            shape = [None if k in d else n for k, n in enumerate(leaf.shape.as_list())]
            leaf = resize(leaf, d, s)
            leaf.set_shape(shape)
        out.append(leaf)
    return out


def _static_count(count, length):
    """A Python int count (take/skip); -1 means all. A tensor count cannot unroll."""
    if not isinstance(count, (int, np.integer)):
        raise TypeError("an unrolled sequence takes or skips a Python int number of elements")
    return length if count < 0 else int(count)


def _materialized(value, type_):
    """A short finite dataset as the list of its elements (read eagerly, which costs far less
    than iterating it inside the graph); anything else as it is."""
    import tensorflow as tf
    if not isinstance(type_, core.SequenceType) or not isinstance(value, tf.data.Dataset):
        return value
    known = _read_before(value, type_.element)
    if known is not None:
        return known
    count = int(value.cardinality())
    if count < 0 or count > MAX_UNROLL:  # unknown, infinite or long
        return value
    return dataset_elements(value, type_.element)


def dataset_elements(dataset, element_type):
    """The elements of a finite dataset as runtime values (a list), or None when its length
    is unknown or infinite.

    A dataset that gives the same elements each time it is read (no random, shuffling,
    sampling, Python-function or file-reading op anywhere in its graph) is read once: the
    same dataset object given round after round costs one read, not one per round. Any other
    is read again at each call, as TF would iterate it."""
    known = _read_before(dataset, element_type)
    if known is not None:
        return known
    if int(dataset.cardinality()) < 0:
        return None
    elements = [_unflatten(element_type, _nest_leaves(element_type, element), for_python=False)
                for element in dataset.as_numpy_iterator()]
    with _READ_ONCE_LOCK:
        varying = dataset in _VARYING
    if not varying and _reads_the_same_each_time(dataset):
        with _READ_ONCE_LOCK:
            _READ_ONCE[dataset] = (element_type, elements)
    elif not varying:  # judged once: its graph is not serialised again each round
        with _READ_ONCE_LOCK:
            _VARYING.add(dataset)
    return elements


_READ_ONCE = weakref.WeakKeyDictionary()  # dataset -> (element type, its elements)
_VARYING = weakref.WeakSet()  # datasets whose elements may change from one read to the next
_READ_ONCE_LOCK = threading.Lock()


def _read_before(dataset, element_type):
    """The elements of a dataset read once before (as `element_type`), or None."""
    with _READ_ONCE_LOCK:
        entry = _READ_ONCE.get(dataset)
    return entry[1] if entry is not None and entry[0] == element_type else None
# ops whose output may differ from one read to the next (or that read the world outside)
_VARYING_OPS = ("Random", "Shuffle", "Sampl", "PyFunc", "Generator", "Stateful", "Reader",
                "Record", "TextLine", "ReadFile", "Variable", "Iterator", "Seed")


def _reads_the_same_each_time(dataset):
    """Whether every op of `dataset`'s graph (its functions included) is deterministic and
    reads nothing outside the graph; False when the graph cannot be read."""
    from tensorflow.core.framework import graph_pb2
    try:
        graph = graph_pb2.GraphDef()
        graph.ParseFromString(dataset._as_serialized_graph().numpy())
    except Exception:  # e.g. a dataset with external state: not ours to judge
        return False
    ops = {node.op for node in graph.node}
    ops.update(node.op for function in graph.library.function for node in function.node_def)
    return not any(marker in op for op in ops for marker in _VARYING_OPS)


def _nest_leaves(type_, element):
    """The tensors of a dataset element in the order of `type_`. (`tf.nest.flatten` orders
    a dict's keys by sorting them, which is not the type's order when the keys are not
    sorted.)"""
    if not isinstance(type_, core.StructType):
        return [element]
    if isinstance(element, collections.abc.Mapping):
        parts = [element[name] for name in type_.names()]
    else:
        parts = list(element)
    return [leaf for t, part in zip(type_, parts) for leaf in _nest_leaves(t, part)]


def _unrolled_input(value, type_):
    """The flat inputs of one parameter leaf for an unrolled variant."""
    if not isinstance(type_, core.SequenceType):
        return [value]
    return [leaf for element in value for leaf in _flatten(type_.element, element)]


def _numpy(tensor):
    value = tensor.numpy() if hasattr(tensor, "numpy") else np.asarray(tensor)
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value[()]
    return value


def _to_tensors(result, tf):
    if isinstance(result, (tf.Tensor, tf.data.Dataset)) or \
            hasattr(result, "_type_spec") and not isinstance(result, tf.Variable):
        return result
    if isinstance(result, tf.Variable):
        return tf.identity(result)
    if isinstance(result, Struct):
        return Struct([(n, _to_tensors(v, tf)) for n, v in result.items()])
    if isinstance(result, collections.abc.Mapping):
        return type(result)((k, _to_tensors(v, tf)) for k, v in result.items()) \
            if not isinstance(result, collections.defaultdict) else \
            {k: _to_tensors(v, tf) for k, v in result.items()}
    items = python_items(result)
    if items is not None and not isinstance(result, (list, tuple)):  # attrs, dataclasses
        return type(result)(**{k: _to_tensors(v, tf) for k, v in items[0]})
    if isinstance(result, tuple) and hasattr(type(result), "_fields"):
        return type(result)(*[_to_tensors(v, tf) for v in result])
    if isinstance(result, (list, tuple)):
        return type(result)(_to_tensors(v, tf) for v in result)
    if result is None:
        raise TypeError("A TF computation must return a value, found None.")
    return tf.convert_to_tensor(result)


def _type_of(result):
    """The fcore type of a traced result (tensors, datasets and containers of them)."""
    from fcore.tracing.infer import infer_type
    return infer_type(result)


def _to_type(spec):
    from fcore.types.conversion import to_type
    return to_type(spec)


def _flatten_output(result):
    items = python_items(result)
    if items is None:
        return [result]
    return [leaf for _, v in items[0] for leaf in _flatten_output(v)]


def _to_tf_input(value, type_):
    if isinstance(type_, core.SequenceType):
        return as_dataset(value, type_.element)
    return value


def as_dataset(value, element_type):
    """A `tf.data.Dataset` for a runtime sequence (a dataset already, or a list)."""
    import tensorflow as tf
    if isinstance(value, tf.data.Dataset):
        return value
    spec = element_spec(element_type)
    elements = [_to_nest(element_type, e) for e in value]
    if not elements:
        return tf.data.Dataset.from_generator(lambda: iter(()), output_signature=spec)
    shapes = {tuple(np.shape(x) for x in tf.nest.flatten(e)) for e in elements}
    if len(shapes) == 1:
        stacked = tf.nest.map_structure(lambda *xs: np.stack(xs), *elements)
        return tf.data.Dataset.from_tensor_slices(stacked)
    return tf.data.Dataset.from_generator(lambda: iter(elements), output_signature=spec)


def _to_nest(type_, value):
    if isinstance(type_, core.StructType):
        names = type_.names()
        values = [_to_nest(t, v) for t, v in zip(type_, value)]
        if names and all(n is not None for n in names):
            return collections.OrderedDict(zip(names, values))
        return tuple(values)
    return value
