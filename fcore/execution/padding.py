"""One XLA compilation for clients whose batches differ only in size.

XLA compiles a graph for each input shape. Clients whose batches differ in size along a
dimension their type leaves unknown (`float32[?,784]`: a partial last batch, a Dirichlet
split's small clients) would each need their own compilation, about a second for the
tutorial's model. Instead, such clients form one group: each varying dimension is padded
to a common size, and inside the compiled loop each client's batch is marked with its real
size (XLA's bounded dynamic dimensions, as TensorFlow does for partial batches on TPUs).
XLA's dynamic padder then computes every op as on the unpadded batch.

The padder handles most ops but not all: a cumulative sum, a slice from the end, `unique`
or `tf.scan` along a padded dimension give wrong results. So a leaf's clients are merged
only when every op of its graph that takes a tensor of unknown size is one of `DYNAMIC_OPS`
(or a slice `CHECKED_OPS` accepts), each checked against eager TensorFlow on padded inputs
(`tests/execution/test_padding.py`); other leaves
compile per shape, as before. Outside XLA (a loop that runs as a plain graph) the batches
are sliced to their sizes instead."""

from __future__ import annotations

import functools

import numpy as np

_ALL = None  # every input may have dynamic dimensions

# Ops verified to compute under XLA's dynamic padder as on the unpadded inputs, with the
# input positions that may have dynamic dimensions.
DYNAMIC_OPS = {op: _ALL for op in (
    # element-wise
    "Abs", "Neg", "Exp", "Log", "Log1p", "Sqrt", "Rsqrt", "Square", "Reciprocal",
    "Tanh", "Sigmoid", "Relu", "Relu6", "Elu", "Selu", "Softplus", "Sign", "Floor",
    "Cast", "Identity", "StopGradient", "IsFinite", "IsNan", "LogicalNot", "Bitcast",
    "AddV2", "Sub", "Mul", "RealDiv", "DivNoNan", "Maximum", "Minimum", "Pow",
    "SquaredDifference", "FloorMod", "Equal", "NotEqual", "Less", "LessEqual", "Greater",
    "GreaterEqual", "LogicalAnd", "LogicalOr", "BitwiseAnd", "SelectV2",
    "ReluGrad", "Relu6Grad", "EluGrad", "SeluGrad", "SigmoidGrad",
    "TanhGrad", "RsqrtGrad", "SqrtGrad", "ZerosLike", "OnesLike", "AddN",
    # linear algebra
    "MatMul", "BatchMatMulV2", "BiasAdd", "BiasAddGrad",
    # reductions
    "Sum", "Mean", "Max", "Min", "Prod", "All", "Any", "ArgMax", "ArgMin",
    # losses and normalisations
    "Softmax", "LogSoftmax", "SparseSoftmaxCrossEntropyWithLogits",
    "SoftmaxCrossEntropyWithLogits",
    # shapes and layout
    "Shape", "ShapeN", "Size", "Reshape", "ExpandDims", "Squeeze", "Transpose", "ConcatV2",
    "Pack", "Tile", "Pad", "BroadcastTo", "ReverseV2",
    # convolutions and pooling
    "Conv2D", "Conv2DBackpropFilter", "Conv2DBackpropInput", "MaxPool", "MaxPoolGrad",
    "AvgPool", "AvgPoolGrad",
)}
DYNAMIC_OPS.update({
    "GatherV2": (1,),  # indices of any size; the gathered-from tensor static
    "OneHot": (0,),
})


def _slices_whole_dynamic_dims(op, dynamic):
    """A `StridedSlice` (`x[:, 0]`, `x[:, :2]`) that takes every dynamic dimension of its
    input whole: such a slice keeps them as they are. A slice along one (`x[-1]`, `x[1:]`)
    is not trusted."""
    if dynamic != {0} or op.get_attr("ellipsis_mask") or op.get_attr("new_axis_mask"):
        return False
    import tensorflow as tf
    strides = tf.get_static_value(op.inputs[3])
    if strides is None or op.inputs[0].shape.rank is None:
        return False
    whole = op.get_attr("begin_mask") & op.get_attr("end_mask") & ~op.get_attr(
        "shrink_axis_mask")
    return all(d >= len(strides) or (whole >> d & 1 and strides[d] == 1)
               for d, size in enumerate(op.inputs[0].shape.as_list())
               if size is None)


# Ops trusted only in some forms: a check of the op and the positions of its dynamic inputs.
CHECKED_OPS = {"StridedSlice": _slices_whole_dynamic_dims}


def accepts_dynamic(concrete):
    """Whether `concrete` (a traced TF leaf) computes correctly on inputs whose dimensions
    of unknown size are XLA dynamic dimensions: every op that takes a tensor of unknown
    size is in `DYNAMIC_OPS` (for that input), and every output has a known shape."""
    known = getattr(concrete, "_fcore_accepts_dynamic", None)
    if known is not None:
        return known
    graph = getattr(concrete, "graph", None)
    accepts = graph is not None and all(
        output.shape.is_fully_defined() for output in concrete.outputs)
    if accepts:
        for op in graph.get_operations():
            dynamic = {k for k, t in enumerate(op.inputs) if not t.shape.is_fully_defined()}
            if dynamic and op.type in CHECKED_OPS:
                if not CHECKED_OPS[op.type](op, dynamic):
                    accepts = False
                    break
            elif dynamic:
                allowed = DYNAMIC_OPS.get(op.type, ())
                if allowed is not _ALL and not dynamic <= set(allowed):
                    accepts = False
                    break
    try:
        concrete._fcore_accepts_dynamic = accepts
    except AttributeError:  # a function that takes no attributes: checked each time
        pass
    return accepts


def bucket(size):
    """`size` rounded up to 2**k or 1.5 * 2**k, at least 8: XLA compiles per shape, so a
    padded dimension (a group's rows, a padded batch) takes one of a few sizes, and rounds
    whose sizes change reuse a compilation."""
    padded = 8
    while padded < size:
        padded = padded * 3 // 2 if padded & (padded - 1) == 0 else padded * 4 // 3
    return padded


def padded_stack(arrays, capacity, out):
    """The clients' arrays of one input as one `[capacity, ...]` array `out(shape, dtype)`,
    each padded with zeros along the dimensions where their sizes differ; returns
    `(stacked, dims, sizes)`, `sizes` an int32 `[capacity, len(dims)]` array of each
    client's sizes along `dims` (None when every array has the same shape)."""
    shapes = [np.shape(a) for a in arrays]
    dims = tuple(d for d in range(len(shapes[0])) if len({s[d] for s in shapes}) > 1)
    if not dims:
        return None, (), None
    padded = list(shapes[0])
    for d in dims:
        padded[d] = bucket(max(s[d] for s in shapes))
    stacked = out((capacity, *padded), np.result_type(*arrays))
    stacked[...] = 0
    sizes = np.zeros((capacity, len(dims)), np.int32)
    for row, (array, shape) in enumerate(zip(arrays, shapes)):
        stacked[(row,) + tuple(slice(0, n) for n in shape)] = array
        sizes[row] = [shape[d] for d in dims]
    return stacked, dims, sizes


def with_sizes(value, dims, sizes, xla):
    """One client's padded `value` (in the graph) at its real `sizes` along `dims`: XLA
    dynamic dimensions under XLA, a slice in a plain graph."""
    import tensorflow as tf
    if xla:
        from tensorflow.compiler.tf2xla.python import xla as tf2xla
        for k, d in enumerate(dims):
            value = tf2xla.set_dynamic_dimension_size(value, d, sizes[k])
        return value
    extent = tf.unstack(tf.shape(value))
    for k, d in enumerate(dims):
        extent[d] = sizes[k]
    return tf.slice(value, tf.zeros([len(extent)], tf.int32), tf.stack(extent))


@functools.cache
def available():
    """Whether this TensorFlow has XLA's dynamic dimensions."""
    try:
        from tensorflow.compiler.tf2xla.python import xla as tf2xla
    except ImportError:
        return False
    return hasattr(tf2xla, "set_dynamic_dimension_size")
