"""The model interface that federated learning trains: `Model`, `TrainableModel`,
`BatchOutput`, as in TensorFlow Federated's tutorial.

All state a model uses lives in TensorFlow variables created by its constructor: trainable
and non-trainable model weights, and local variables (per-client statistics such as example
counts and loss sums, reset at the start of each client's work)."""

from __future__ import annotations

import abc
import collections

BatchOutput = collections.namedtuple("BatchOutput", ["loss", "predictions", "num_examples"],
                                     defaults=(None, None, None))
BatchOutput.__doc__ = """What `forward_pass` returns: the batch's loss, the predictions and,
optionally, the number of examples (otherwise counted from the batch's first tensor)."""


class Model(abc.ABC):
    """A model for federated learning.

    Subclasses create their variables in `__init__` and implement the members below.
    `federated_output_computation` is an `fcore.federated_computation` (polymorphic is fine)
    from the clients' `report_local_outputs()` values to the metrics reported at the server.
    """

    @property
    @abc.abstractmethod
    def trainable_variables(self):
        """The variables training changes (a list)."""

    @property
    @abc.abstractmethod
    def non_trainable_variables(self):
        """Model variables training does not change (a list)."""

    @property
    @abc.abstractmethod
    def local_variables(self):
        """Per-client statistics, reset to zero before each client's work (a list)."""

    @property
    @abc.abstractmethod
    def input_spec(self):
        """The structure of one batch: `tf.TensorSpec`s, e.g. an OrderedDict with `x`, `y`."""

    @abc.abstractmethod
    def forward_pass(self, batch, training=True):
        """Runs the model on a batch, updates the local statistics, returns a `BatchOutput`."""

    @abc.abstractmethod
    def report_local_outputs(self):
        """This client's statistics (a dict of tensors) for `federated_output_computation`."""

    @property
    @abc.abstractmethod
    def federated_output_computation(self):
        """An `fcore.federated_computation` aggregating `report_local_outputs()` values."""


class TrainableModel(Model):
    """A `Model` that also says how to train on one batch."""

    @abc.abstractmethod
    def train_on_batch(self, batch):
        """Runs a forward pass and updates the trainable variables; returns a `BatchOutput`."""
