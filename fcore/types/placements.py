"""Placement literals: where a federated value lives (`SERVER` or `CLIENTS`)."""

from __future__ import annotations


class PlacementLiteral:
    """One of the two placements of this language. Compare with `is` or `==`.

    `name` is the printed form (`SERVER`), `uri` the lower-case identifier (`server`).
    `default_all_equal` is the all-equal flag a `FederatedType` gets when none is given.
    """

    __slots__ = ("name", "uri", "default_all_equal")

    def __init__(self, name: str, uri: str, default_all_equal: bool):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "uri", uri)
        object.__setattr__(self, "default_all_equal", default_all_equal)

    def __setattr__(self, key, value):
        raise AttributeError("placement literals are immutable")

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"fcore.{self.name}"

    def __reduce__(self):
        return (from_name, (self.name,))


SERVER = PlacementLiteral("SERVER", "server", default_all_equal=True)
CLIENTS = PlacementLiteral("CLIENTS", "clients", default_all_equal=False)

_BY_NAME = {p.name: p for p in (SERVER, CLIENTS)}
_BY_NAME.update({p.uri: p for p in (SERVER, CLIENTS)})


def from_name(name: str) -> PlacementLiteral:
    """Returns the placement literal spelled `name` (`SERVER`/`server`, `CLIENTS`/`clients`)."""
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Expected a placement (SERVER or CLIENTS), found {name!r}.") from None


def to_placement(value) -> PlacementLiteral:
    """Coerces a placement literal or its name to a `PlacementLiteral`."""
    if isinstance(value, PlacementLiteral):
        return value
    if isinstance(value, str):
        return from_name(value)
    raise TypeError(
        f"Expected a placement (fcore.SERVER or fcore.CLIENTS), found {value!r} "
        f"of Python type {type(value).__name__}.")
