"""Coordinate-wise order statistics of the clients' values: the median (as Flower's FedMedian)
and the trimmed mean (as Flower's FedTrimmedAvg), robust to a minority of wild clients.

fcore has no intrinsic that brings the clients' values to the server, so the order
statistics are found with the intrinsics there are, exactly, by bisection: each coordinate
of a value is mapped to an integer key in the same order (its bits as an integer, all but
the sign bit flipped for a negative value; -0 and +0 share the key 0), and the k-th
smallest key of each coordinate over the clients is searched in 32 rounds (64 for float64
values) of

    the server broadcasts a candidate key per coordinate;
    each client answers, per coordinate, whether its key is at most the candidate (0 or 1);
    `federated_sum` counts them; the server halves each coordinate's interval.

All the order statistics one call needs (the two middle ones of a median, the two bounds
of a trimmed mean) are searched together, in the same rounds. The client count is summed in
the first round, the trimmed mean's sum of the values between its bounds in one more.

The cost, which these docstrings do not hide: every round is a pass over all the clients,
so one call makes about 33 aggregation passes (a median 32, a trimmed mean 33; twice that
for float64 values), each broadcasting two keys per coordinate and summing two int32
answers per coordinate from every client. And the clients' values must all be there at
once, for the whole call: the executors keep the argument, one array per client value,
while the passes run. The fast and Dask executors keep nothing else per client (each pass
streams the clients' answers into its sum); the reference interpreter holds one round's
answers of all the clients at a time."""

from __future__ import annotations

import numpy as np

from fcore import structure
from fcore.aggregators import core as agg
from fcore.struct import Struct
from fcore.tracing import intrinsics as fi
from fcore.tracing import value as values
from fcore.tracing.computation import federated_computation, tf_computation
from fcore.types import core
from fcore.types.placements import CLIENTS, SERVER

COUNT = np.int32
#: The order statistics searched at once: two (the middle ones, or the trim bounds).
STATISTICS = 2


class MedianFactory(agg.UnweightedAggregationFactory):
    """The coordinate-wise median of the clients' values (Flower's FedMedian): the middle
    value of each coordinate over the clients, or the mean of the two middle ones for an
    even number of clients (as `np.median`). Unweighted: every client counts once.

    A client whose value has a NaN or an infinity anywhere is left out (it does not count);
    with no client left the result is NaN. Exact: the result is one of the clients' values
    (or the mean of two), found by bisection over the clients (see the module's
    documentation) in 32 aggregation passes per call (64 for float64 values), while every
    client's value stays available for the whole call.

    No state; measurements `<clients=int32,excluded=int32>` (the clients counted and those
    left out)."""

    def create(self, value_type) -> agg.AggregationProcess:
        value_type = agg.value_type_of(value_type, "MedianFactory.create", float_only=True)
        return _order_process(value_type, None)

    def __repr__(self):
        return "MedianFactory()"


class TrimmedMeanFactory(agg.UnweightedAggregationFactory):
    """The coordinate-wise trimmed mean of the clients' values (Flower's FedTrimmedAvg): for
    each coordinate, the `k = floor(beta * n)` smallest and `k` largest of the `n` clients'
    values are dropped and the rest averaged (ties at the cut are split exactly as sorting
    would: as `np.sort(v)[k:n - k].mean()`). `beta` is in [0, 0.5); `beta = 0` is the plain
    mean. Unweighted: every client counts once.

    A client whose value has a NaN or an infinity anywhere is left out (it does not count in
    `n`); with no client left the result is NaN. The two cut values of each coordinate are
    found exactly by bisection over the clients (see the module's documentation), then one
    more pass sums the values between them: 33 aggregation passes per call (65 for float64
    values), while every client's value stays available for the whole call.

    No state; measurements `<clients=int32,excluded=int32>`."""

    def __init__(self, beta):
        try:
            beta = float(beta)
        except (TypeError, ValueError):
            raise TypeError(f"TrimmedMeanFactory: expected beta, the fraction trimmed at each "
                            f"end, a number in [0, 0.5), found {beta!r}.") from None
        if not 0 <= beta < 0.5:
            raise ValueError(f"TrimmedMeanFactory: expected beta, the fraction trimmed at each "
                             f"end, in [0, 0.5), found {beta}.")
        self.beta = beta

    def create(self, value_type) -> agg.AggregationProcess:
        value_type = agg.value_type_of(value_type, "TrimmedMeanFactory.create",
                                       float_only=True)
        return _order_process(value_type, self.beta)

    def __repr__(self):
        return f"TrimmedMeanFactory(beta={self.beta})"


# Keys ---------------------------------------------------------------------------------------

def _wide(dtype):
    """Whether values of `dtype` take 64-bit keys (float64) rather than 32-bit ones."""
    return np.dtype(dtype).itemsize > 4


def _key_dtype(dtype):
    return np.int64 if _wide(dtype) else np.int32


def _keys(tensor, tf):
    """Integer keys in the order of the float values (-0 and +0 share the key 0); the values
    of dtypes narrower than float32 are widened first (exactly)."""
    wide = _wide(tensor.dtype.as_numpy_dtype)
    x = tf.cast(tensor, tf.float64 if wide else tf.float32)
    key_type = tf.int64 if wide else tf.int32
    bits = tf.bitcast(x, key_type)
    magnitude = tf.bitwise.bitwise_and(bits, tf.constant(np.iinfo(key_type.as_numpy_dtype).max,
                                                         key_type))
    # The sign from the bits, not from `x < 0`: TF's CPU kernels may flush subnormals to zero.
    negative = tf.logical_and(bits < 0, magnitude > 0)
    return tf.where(negative, tf.bitwise.invert(magnitude), magnitude)


def _from_keys(keys, tf):
    """The float (float32 or float64) values of `keys`."""
    key_type = keys.dtype
    magnitude = tf.where(keys < 0, tf.bitwise.invert(keys), keys)
    sign = tf.constant(np.iinfo(key_type.as_numpy_dtype).min, key_type)
    bits = tf.where(keys < 0, tf.bitwise.bitwise_or(magnitude, sign), magnitude)
    return tf.bitcast(bits, tf.float64 if key_type == tf.int64 else tf.float32)


def _midpoint(lo, hi, tf):
    """floor((lo + hi) / 2), without overflow."""
    return tf.math.floordiv(lo, 2) + tf.math.floordiv(hi, 2) + \
        tf.bitwise.bitwise_and(tf.bitwise.bitwise_and(lo, hi), tf.ones_like(lo))


def _finite(parts, tf):
    checks = [tf.reduce_all(tf.math.is_finite(t)) for t in parts]
    return tf.reduce_all(tf.stack(checks)) if checks else tf.constant(True)


# The process --------------------------------------------------------------------------------

def _order_process(value_type, beta):
    """The median (`beta` None) or the `beta`-trimmed mean of the clients' values."""
    leaves = structure.type_leaves(value_type)
    rounds = 64 if any(_wide(leaf.dtype) for leaf in leaves) else 32

    def keyed(extra=()):
        """Per leaf, keys (or counts) of shape [STATISTICS, *shape]."""
        return core.StructType([(None, core.TensorType(_key_dtype(leaf.dtype) if not extra
                                                      else extra[0],
                                                      [STATISTICS, *leaf.shape]))
                                for leaf in leaves])

    keys_type, counts_type = keyed(), keyed((COUNT,))
    search_type = core.StructType([
        ("lo", keys_type), ("hi", keys_type),  # each order statistic lies in [lo, hi]
        ("below_lo", counts_type), ("at_most_hi", counts_type),  # #keys < lo, #keys <= hi
        ("candidate", keys_type),               # the key asked about in the next round
        ("ranks", core.TensorType(COUNT, [STATISTICS])),  # the order statistics (0-based)
        ("clients", core.TensorType(COUNT)), ("excluded", core.TensorType(COUNT))])
    first_candidate = [_first_candidate(leaf.dtype) for leaf in leaves]

    @tf_computation(value_type)
    def first_answer(value):
        """Round 1, at each client: whether it counts, and its keys <= the first candidate
        (the same for every order statistic and coordinate, so sent once)."""
        import tensorflow as tf
        parts = agg.tensors(value)
        finite = _finite(parts, tf)
        below = [tf.cast(tf.logical_and(finite, _keys(t, tf) <= c), COUNT)
                 for t, c in zip(parts, first_candidate)]
        return Struct([("clients", tf.cast(finite, COUNT)),
                       ("excluded", tf.cast(tf.logical_not(finite), COUNT)),
                       ("below", Struct([(None, b) for b in below]))])

    @tf_computation(first_answer.type_signature.result)
    def first_step(counts):
        """Round 1, at the server: the ranks sought, and the search after one answer."""
        import tensorflow as tf
        n = counts.clients
        ranks = _ranks(n, beta, tf)
        lo, hi, below_lo, at_most_hi = [], [], [], []
        for below, c, leaf in zip(agg.tensors(counts.below), first_candidate, leaves):
            key_type = tf.as_dtype(_key_dtype(leaf.dtype))
            info = np.iinfo(key_type.as_numpy_dtype)
            shape = [STATISTICS, *leaf.shape]
            lo.append(tf.fill(shape, tf.constant(info.min, key_type)))
            hi.append(tf.fill(shape, tf.constant(info.max, key_type)))
            below_lo.append(tf.zeros(shape, COUNT))
            at_most_hi.append(tf.fill(shape, n))
        answers = [tf.broadcast_to(b[None], [STATISTICS, *leaf.shape])
                   for b, leaf in zip(agg.tensors(counts.below), leaves)]
        candidates = [tf.fill([STATISTICS, *leaf.shape],
                              tf.constant(c, _key_dtype(leaf.dtype)))
                      for c, leaf in zip(first_candidate, leaves)]
        return _advance(lo, hi, below_lo, at_most_hi, candidates, answers, ranks, n,
                        counts.excluded, tf)

    @tf_computation(value_type, keys_type)
    def answer(value, candidate):
        """A round at each client: per coordinate and order statistic, whether its key is
        at most the candidate (0 for a client left out)."""
        import tensorflow as tf
        parts = agg.tensors(value)
        finite = _finite(parts, tf)
        return Struct([(None, tf.cast(tf.logical_and(finite, _keys(t, tf)[None] <= c),
                                      COUNT))
                       for t, c in zip(parts, agg.tensors(candidate))])

    @tf_computation(search_type, counts_type)
    def step(search, counts):
        """A round at the server: each interval halved."""
        import tensorflow as tf
        return _advance(agg.tensors(search.lo), agg.tensors(search.hi),
                        agg.tensors(search.below_lo), agg.tensors(search.at_most_hi),
                        agg.tensors(search.candidate), agg.tensors(counts), search.ranks,
                        search.clients, search.excluded, tf)

    @federated_computation(core.FederatedType(search_type, SERVER),
                           core.FederatedType(value_type, CLIENTS))
    def bisect(search, value):
        """One round of the search: a pass over the clients."""
        candidate = fi.federated_broadcast(search.candidate)
        counts = fi.federated_sum(fi.federated_map(answer, fi.federated_zip((value,
                                                                             candidate))))
        return fi.federated_map(step, fi.federated_zip((search, counts)))

    finish = _median_leaf(value_type, search_type) if beta is None else None
    if beta is not None:
        between_leaf = _between_leaf(value_type, keys_type)
        finish = _trimmed_mean_leaf(value_type, search_type,
                                    between_leaf.type_signature.result)
    initialize = agg.empty_state()

    @federated_computation(*agg.next_parameters(agg.state_type(initialize), value_type))
    def next_fn(state, value):
        first = fi.federated_sum(fi.federated_map(first_answer, value))
        search = fi.federated_map(first_step, first)
        again = values.bind(bisect.ir)  # one copy of the round in the IR, called many times
        for _ in range(rounds - 1):
            search = again(search, value)
        if beta is None:
            result = fi.federated_map(finish, search)
        else:
            between = fi.federated_sum(fi.federated_map(between_leaf, fi.federated_zip(
                (value, fi.federated_broadcast(search.lo)))))
            result = fi.federated_map(finish, fi.federated_zip((search, between)))
        measurements = agg.server_struct(clients=search.clients, excluded=search.excluded)
        return agg.output(state, result, measurements)

    return agg.AggregationProcess(initialize, next_fn)


def _first_candidate(dtype):
    info = np.iinfo(_key_dtype(dtype))
    return (int(info.min) + int(info.max)) // 2


def _ranks(n, beta, tf):
    """The 0-based ranks of the two order statistics among `n` sorted values: the two middle
    ones (the same one for odd `n`), or the first and last kept by the trimmed mean."""
    if beta is None:
        return tf.stack([tf.math.floordiv(n - 1, 2), tf.math.floordiv(n, 2)])
    trimmed = tf.cast(tf.floor(tf.constant(beta, tf.float64) * tf.cast(n, tf.float64)),
                      COUNT)
    return tf.stack([trimmed, n - trimmed - 1])


def _advance(lo, hi, below_lo, at_most_hi, candidates, answers, ranks, n, excluded, tf):
    """The search after the clients' answers for the candidates: where at least rank + 1
    keys are at most the candidate, the order statistic is at most it (`hi` moves down);
    elsewhere it is above (`lo` moves up). The counts at the ends come along: `below_lo` is
    the number of keys < lo, `at_most_hi` that of keys <= hi."""
    out = {name: [] for name in ("lo", "hi", "below_lo", "at_most_hi", "candidate")}
    for low, high, below, at_most_high, c, count in zip(lo, hi, below_lo, at_most_hi,
                                                        candidates, answers):
        needed = tf.reshape(ranks + 1, [STATISTICS] + [1] * (len(count.shape) - 1))
        at_most = count >= needed
        # (c + 1 only where c < high: no overflow at the largest key)
        low = tf.where(at_most, low, c + tf.cast(c < high, c.dtype))
        below = tf.where(at_most, below, count)
        high = tf.where(at_most, c, high)
        at_most_high = tf.where(at_most, count, at_most_high)
        for name, t in (("lo", low), ("hi", high), ("below_lo", below),
                        ("at_most_hi", at_most_high), ("candidate", _midpoint(low, high, tf))):
            out[name].append(t)
    fields = [(name, Struct([(None, t) for t in ts])) for name, ts in out.items()]
    return Struct(fields + [("ranks", ranks), ("clients", n), ("excluded", excluded)])


def _median_leaf(value_type, search_type):
    @tf_computation(search_type)
    def median(search):
        """The mean of the two middle values (the middle one, twice, for odd n)."""
        import tensorflow as tf
        results = []
        for keys, leaf in zip(agg.tensors(search.lo), structure.type_leaves(value_type)):
            found = _from_keys(keys, tf)
            lower, upper = found[0], found[1]
            same = tf.equal(search.ranks[0], search.ranks[1])
            middle = tf.where(same, lower, (lower + upper) / 2)
            middle = tf.where(search.clients > 0, middle, _nan_like(middle, tf))
            results.append(tf.cast(middle, leaf.dtype))
        return agg.packed(value_type, results)
    return median


def _nan_like(tensor, tf):
    return tf.fill(tf.shape(tensor), tf.constant(np.nan, tensor.dtype))


def _between_leaf(value_type, keys_type):
    @tf_computation(value_type, keys_type)
    def between(value, bounds):
        """At each client: its values strictly between the two cut values (else 0), in
        float64."""
        import tensorflow as tf
        parts = agg.tensors(value)
        finite = _finite(parts, tf)
        sums = []
        for t, b in zip(parts, agg.tensors(bounds)):
            keys = _keys(t, tf)
            inside = tf.logical_and(finite, tf.logical_and(b[0] < keys, keys < b[1]))
            wide = tf.cast(tf.where(finite, t, tf.zeros_like(t)), tf.float64)
            sums.append(tf.where(inside, wide, tf.zeros_like(wide)))
        return Struct([(None, s) for s in sums])
    return between


def _trimmed_mean_leaf(value_type, search_type, between_type):
    @tf_computation(search_type, between_type)
    def trimmed_mean(search, between):
        """The values strictly between the cuts, plus the kept copies of each cut value,
        over the n - 2k kept values."""
        import tensorflow as tf
        n, k = search.clients, search.ranks[0]
        kept = tf.cast(n - 2 * k, tf.float64)
        results = []
        for keys, below_lo, at_most_hi, inner, leaf in zip(
                agg.tensors(search.lo), agg.tensors(search.below_lo),
                agg.tensors(search.at_most_hi), agg.tensors(between),
                structure.type_leaves(value_type)):
            cut = tf.cast(_from_keys(keys, tf), tf.float64)
            low, high = cut[0], cut[1]
            # Values equal to the low cut with rank >= k, and to the high one with rank
            # <= n - k - 1 (#keys <= low cut is at_most_hi[0]; #keys < high is below_lo[1]).
            low_copies = tf.cast(at_most_hi[0] - k, tf.float64)
            high_copies = tf.cast(n - k - below_lo[1], tf.float64)
            total = inner + low_copies * low + high_copies * high
            mean = tf.where(tf.equal(keys[0], keys[1]), low, total / kept)
            mean = tf.where(n > 0, mean, _nan_like(mean, tf))
            results.append(tf.cast(mean, leaf.dtype))
        return agg.packed(value_type, results)
    return trimmed_mean
