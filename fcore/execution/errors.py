"""Errors raised while running computations."""

from fcore.types.errors import TypeMismatchError


class ExecutionError(RuntimeError):
    """A computation failed while running; the message names the computation and, for work
    done per client, the client index."""


class DatasetValueError(TypeMismatchError, ExecutionError):
    """An element of a `tf.data.Dataset` given for a narrower dtype does not fit it (found as
    the dataset is read, so it is both a type mismatch and an execution error)."""


DATASET_CHECK = "fcore dataset check: "  # marks the message of the in-graph check


def dataset_check_error(error):
    """The `DatasetValueError` that TF's `error` carries from a dataset check, or None."""
    text = str(error)
    start = text.find(DATASET_CHECK)
    if start < 0:
        return None
    rest = text[start + len(DATASET_CHECK):].split("\n")[0]
    message, _, found = rest.partition("] [")
    found = found.split("]")[0].strip()
    return DatasetValueError(f"{message.strip()}" + (f" (found {found})." if found else "."))


class CardinalityError(ValueError):
    """The number of clients is needed but nothing gives it."""


def needs_num_clients(what) -> CardinalityError:
    return CardinalityError(
        f"{what} needs the number of clients, and no client-placed argument gives it. Run it "
        f"inside `with fcore.execution_context(num_clients=N):`, or pass a client-placed "
        f"argument (a list with one value per client).")
