"""`training.differences_finite(after, before)` answers as `reduce_all(is_finite(after -
before))` does, eagerly, in a graph and under XLA, for non-finite values on either side,
values near the dtype's maximum and differences that overflow (checked against NumPy)."""

import numpy as np
import pytest
import tensorflow as tf

from learning import training

SHAPES = [(40, 12), (12,), (3, 1), ()]
BIG = np.finfo(np.float32).max


def numpy_answer(after, before):
    with np.errstate(all="ignore"):
        return all(np.isfinite(np.asarray(a) - np.asarray(b)).all()
                   for a, b in zip(after, before))


def cases():
    rng = np.random.default_rng(0)
    base = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    yield "finite", base, [b + 0.1 for b in base]
    for value in (np.nan, np.inf, -np.inf, 0.6 * BIG, -0.6 * BIG, 0.3 * BIG, BIG):
        for position in range(len(SHAPES)):
            for side in (0, 1):
                pair = [[b.copy() for b in base], [b.copy() for b in base]]
                target = pair[side]
                if target[position].ndim:
                    target[position].flat[rng.integers(target[position].size)] = value
                else:
                    target[position] = np.float32(value)
                yield f"{value}@{position}/{side}", pair[0], pair[1]
    after, before = [b.copy() for b in base], [b.copy() for b in base]
    after[0][3, 4], before[0][3, 4] = 0.6 * BIG, -0.6 * BIG  # each finite, the difference not
    yield "difference overflows", after, before
    after = [np.full(s, 1e36, np.float32) for s in SHAPES]  # sums overflow, differences do not
    yield "large sums", after, [-0.5 * a for a in after]
    wide = [b.astype(np.float64) for b in base]
    other = [w.copy() for w in wide]
    wide[0][0, 0] = 0.6 * np.finfo(np.float64).max
    other[0][0, 0] = -wide[0][0, 0]
    yield "float64 overflow", wide, other


CASES = list(cases())
PLAIN = tf.function(training.differences_finite)
COMPILED = tf.function(training.differences_finite, jit_compile=True)


@pytest.mark.parametrize("name,after,before", CASES, ids=[c[0] for c in CASES])
def test_the_answer_is_numpys(name, after, before):
    expected = numpy_answer(after, before)
    tensors = [tf.constant(a) for a in after], [tf.constant(b) for b in before]
    assert bool(training.differences_finite(*tensors)) == expected
    assert bool(PLAIN(*tensors)) == expected
    assert bool(COMPILED(*tensors)) == expected


def test_no_tensors_are_finite():
    assert bool(training.differences_finite([], []))
