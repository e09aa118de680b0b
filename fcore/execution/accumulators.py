"""Streaming aggregation: each aggregating intrinsic as an accumulator fed one client at a
time, so aggregating N clients holds one running value, not N client values.

The results equal the reference interpreter's (to float rounding): sums and means accumulate
in float64 (complex128 for complex), weighted means leave out members of weight zero, and
`federated_aggregate` folds every client into `zero` with `accumulate`, then `report`s (`zero`
must be an identity of `merge`: see `intrinsic_impls.check_merge_identity`).

Each aggregation the fast executor streams has an "accumulator" rule, attached here: a
factory `(fn_type, server_argument) -> accumulator` with `add`, `merge` and `result`."""

from __future__ import annotations

import numpy as np

from fcore import structure
from fcore.execution import intrinsic_impls as impls
from fcore.execution.errors import ExecutionError
from fcore.intrinsics.definitions import lookup
from fcore.struct import Struct
from fcore.types import core


class Reduction:
    """Sums, minima and maxima: leaf by leaf with `reducer`. With no client, `empty()` gives
    the result (zeros for a sum; min and max of nothing are undefined)."""

    def __init__(self, fn_type, reducer, empty, name):
        self.name = name
        self.type_ = fn_type.result.member
        self.types = structure.leaf_types(self.type_)
        self.reducer, self.empty = reducer, empty
        # integer sums run in Python ints: a total the dtype cannot hold is an error
        self.exact = [reducer is np.add and t.dtype.kind in "iu" for t in self.types]
        self.totals = None

    def add(self, member):
        leaves = [np.asarray(x) for x in structure.leaves(member)]
        self.totals = self._own(leaves) if self.totals is None else \
            self._combine(self.totals, leaves)

    def merge(self, other):
        if other.totals is not None:
            self.totals = self._own(other.totals) if self.totals is None else \
                self._combine(self.totals, other.totals)

    def _own(self, leaves):
        return [impls.exact(x) if exact else x for x, exact in zip(leaves, self.exact)]

    def _combine(self, totals, leaves):
        for a, b in zip(totals, leaves):
            impls.same_shapes(self.name, a, b)
        return [a + impls.exact(b) if exact else self.reducer(a, b)
                for a, b, exact in zip(totals, leaves, self.exact)]

    def result(self):
        if self.totals is None:
            return self.empty(self.type_)
        return structure.rebuild(self.type_, [
            impls.exact_sum(t, v, self.name) if exact else impls._cast(t, v)
            for t, v, exact in zip(self.types, self.totals, self.exact)])


def _undefined(name):
    def empty(type_):
        raise ExecutionError(f"{name} of zero clients is undefined.")
    return empty


class Mean:
    def __init__(self, fn_type, argument_type, weighted=False):
        self.type_ = fn_type.result.member
        self.types = structure.leaf_types(self.type_)
        self.weighted = weighted
        self.name = "federated_weighted_mean" if weighted else "federated_mean"
        self.totals = None
        self._scratch = None
        self.weight = 0.0

    def __getstate__(self):  # travels without its scratch buffers
        return {k: v for k, v in self.__dict__.items() if k != "_scratch"}

    def __setstate__(self, state):
        self.__dict__.update(state, _scratch=None)

    def add(self, member):
        if self.weighted:
            member, weight = member
            weight = float(weight)
            if weight == 0:
                return  # as the reference: a member of weight zero is left out
        else:
            weight = 1.0
        leaves = structure.leaves(member)
        if self.totals is not None and self._scratch is None:  # adopted by `merge`: own them
            self.totals = [np.array(t) for t in self.totals]
            self._scratch = [np.empty_like(t) for t in self.totals]
        if self.totals is None:
            # np.array: 0-d arrays stay arrays (a product of 0-d arrays is a scalar), so
            # the in-place additions below update them
            self.totals = [np.array(np.asarray(x, dtype=impls._wide(t)) * weight)
                           for t, x in zip(self.types, leaves)]
            self._scratch = [np.empty_like(total) for total in self.totals]
        else:  # in place: no temporary arrays per client
            for total, x in zip(self.totals, leaves):
                impls.same_shapes(self.name, total, x)
            for total, scratch, x in zip(self.totals, self._scratch, leaves):
                np.multiply(x, weight, out=scratch, casting="unsafe")
                total += scratch
        self.weight += weight

    def merge(self, other):
        """Adds `other`'s partial mean (which is consumed: its arrays may be adopted)."""
        if other.totals is not None:
            if self.totals is None:  # adopted, copied only if `add` writes to them
                self.totals, self._scratch = list(other.totals), None
            else:  # np.array: 0-d totals stay arrays that `add` can update in place
                for a, b in zip(self.totals, other.totals):
                    impls.same_shapes(self.name, a, b)
                self.totals = [np.array(a + b) for a, b in zip(self.totals, other.totals)]
            self.weight += other.weight

    def result(self):
        if self.totals is None:
            return structure.rebuild(self.type_, [impls._cast(t, np.full(t.shape, np.nan))
                                               for t in self.types])
        with np.errstate(invalid="ignore", divide="ignore"):
            return structure.rebuild(self.type_, [_divided(t, v, self.weight)
                                               for t, v in zip(self.types, self.totals)])


def _divided(type_, total, weight):
    """`total / weight` as a value of `type_`, computed straight into its dtype."""
    if np.ndim(total) == 0:
        return impls._cast(type_, total / weight)
    return np.divide(total, weight, out=np.empty(np.shape(total), type_.dtype),
                     casting="unsafe")


class Aggregate:
    """`federated_aggregate`: the server parts (zero, accumulate, report) come with the
    argument; only the client values stream."""

    def __init__(self, zero, accumulate, merge, report):
        self.accumulator = zero
        self.accumulate, self.merge_fn, self.report = accumulate, merge, report

    def add(self, member):
        self.accumulator = self.accumulate(Struct([(None, self.accumulator), (None, member)]))

    def merge(self, other):
        """Folds in another part's accumulator (a compiled group's, a Dask chunk's) with
        `merge`; `zero` is an identity of `merge`, so how clients are split does not
        matter."""
        self.accumulator = self.merge_fn(Struct([(None, self.accumulator),
                                                 (None, other.accumulator)]))

    def result(self):
        return self.report(self.accumulator)


class SecureSum:
    """Checks each client's values against the bound as they arrive; sums exactly."""

    def __init__(self, fn_type, argument_type, bound, bitwidth):
        self.type_ = fn_type.result.member
        self.types = structure.leaf_types(self.type_)
        limits = impls._bounds(bound, fn_type.parameter[1], len(self.types))
        self.limits = [2 ** b - 1 for b in limits] if bitwidth else limits
        self.bitwidth = bitwidth
        self.totals = [0] * len(self.types)
        self.count = 0
        self.first_client = 0  # the index of the first client fed (for messages)
        self.what = "federated_secure_sum_bitwidth" if bitwidth else "federated_secure_sum"

    def add(self, member):
        for position, (limit, leaf) in enumerate(zip(self.limits, structure.leaves(member))):
            values = np.array(np.asarray(leaf).tolist(), dtype=object)
            if np.any(values < 0) or np.any(values > limit):
                raise ExecutionError(f"{self.what}: the value {values.tolist()} of client "
                                     f"{self.first_client + self.count} is outside "
                                     f"[0, {limit}].")
            self.totals[position] = self.totals[position] + values
        self.count += 1

    def merge(self, other):
        self.totals = [a + b for a, b in zip(self.totals, other.totals)]
        self.count += other.count

    def accepts(self, partial):
        """Whether a compiled group's `SecureSumPartial` may be merged: every client value
        was in range and no int64 total wrapped (else its clients run one by one)."""
        if not isinstance(partial, SecureSumPartial):
            return True
        if partial.wrapped:
            return False
        return all(partial.count == 0 or (np.all(low >= 0) and np.all(high <= limit))
                   for limit, low, high in zip(self.limits, partial.smallest,
                                               partial.largest))


    def result(self):
        sums = []
        for leaf_type, limit, total in zip(self.types, self.limits, self.totals):
            modulus = impls.secure_modulus(limit, self.count, self.bitwidth)
            total = np.asarray(total, dtype=object) % modulus if self.count else \
                np.zeros(leaf_type.shape or (), dtype=object)
            sums.append(impls.exact_sum(leaf_type, total, self.what))
        return structure.rebuild(self.type_, sums)


class SecureSumPartial:
    """A secure sum over a compiled group of clients: exact totals, the count, and each
    leaf's smallest and largest value, for `SecureSum.accepts` to check against the bound."""

    def __init__(self, fn_type):
        self.totals, self.count, self.smallest, self.largest = [], 0, [], []
        self.wrapped = False


def _accumulator(uri):
    """Attaches the decorated factory `(fn_type, server_argument) -> accumulator` as the
    "accumulator" rule of intrinsic `uri`."""
    def register(factory):
        return lookup(uri).def_rule("accumulator", factory)
    return register


@_accumulator("federated_sum")
def _sum(fn_type, server_argument):
    return Reduction(fn_type, np.add, lambda type_: impls._sum(type_, []), "federated_sum")


@_accumulator("federated_mean")
def _mean(fn_type, server_argument):
    return Mean(fn_type, fn_type.parameter)


@_accumulator("federated_weighted_mean")
def _weighted_mean(fn_type, server_argument):
    return Mean(fn_type, fn_type.parameter, weighted=True)


def _extremum(uri, reducer):
    def factory(fn_type, server_argument):
        return Reduction(fn_type, reducer, _undefined(uri), uri)
    return _accumulator(uri)(factory)


_extremum("federated_min", np.minimum)
_extremum("federated_max", np.maximum)


@_accumulator("federated_aggregate")
def _aggregate(fn_type, server_argument):
    zero, accumulate, merge, report = server_argument
    impls.check_merge_identity(zero, merge)
    return Aggregate(zero, accumulate, merge, report)


@_accumulator("federated_secure_sum")
def _secure_sum(fn_type, server_argument):
    return SecureSum(fn_type, fn_type.parameter, server_argument[0], bitwidth=False)


@_accumulator("federated_secure_sum_bitwidth")
def _secure_sum_bitwidth(fn_type, server_argument):
    return SecureSum(fn_type, fn_type.parameter, server_argument[0], bitwidth=True)


def start(uri, fn_type, server_argument):
    """An accumulator for intrinsic `uri` (its "accumulator" rule). `server_argument` holds
    the argument's parts that are not the streamed client value (for aggregate: zero,
    accumulate, merge, report; for secure sums: the bound)."""
    return lookup(uri).rule("accumulator")(fn_type, server_argument)


def member_type(fn_type):
    """The type of the per-client member an accumulator of `fn_type` is fed."""
    parameter = fn_type.parameter
    if isinstance(parameter, core.FederatedType):
        return parameter
    return parameter[0]
