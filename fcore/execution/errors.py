"""Errors raised while running computations."""


class ExecutionError(RuntimeError):
    """A computation failed while running; the message names the computation and, for work
    done per client, the client index."""


class CardinalityError(ValueError):
    """The number of clients is needed but nothing gives it."""


def needs_num_clients(what) -> CardinalityError:
    return CardinalityError(
        f"{what} needs the number of clients, and no client-placed argument gives it. Run it "
        f"inside `with fcore.execution_context(num_clients=N):`, or pass a client-placed "
        f"argument (a list with one value per client).")
