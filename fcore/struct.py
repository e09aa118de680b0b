"""`Struct`: the runtime value of a struct type, an ordered tuple with optional names."""

from __future__ import annotations

import collections
import collections.abc
import dataclasses
import sys

import numpy as np


class Struct:
    """An immutable ordered tuple whose elements may have names.

    >>> s = Struct([('a', 1), ('b', 2.5)])
    >>> s.a, s[1], list(s), str(s)
    (1, 2.5, [1, 2.5], '<a=1,b=2.5>')

    Floats print rounded to 6 significant digits, as TFF prints metrics:
    `<sparse_categorical_accuracy=0.9138,loss=0.271792>`.
    """

    __slots__ = ("_elements", "_names")

    def __init__(self, elements):
        elements = tuple(elements)
        names = {}
        for index, element in enumerate(elements):
            if not (isinstance(element, tuple) and len(element) == 2):
                raise TypeError(f"Struct: expected (name, value) pairs, found {element!r} at "
                                f"index {index}.")
            name = element[0]
            if name is not None:
                if not isinstance(name, str):
                    raise TypeError(f"Struct: a name must be a str or None, found {name!r}.")
                if name in names:
                    raise ValueError(f"Struct: duplicate name {name!r}.")
                names[name] = index
        object.__setattr__(self, "_elements", elements)
        object.__setattr__(self, "_names", names)

    @classmethod
    def named(cls, **kwargs):
        """`Struct.named(a=1, b=2)` is `Struct([('a', 1), ('b', 2)])`."""
        return cls(kwargs.items())

    def __setattr__(self, key, value):
        raise AttributeError("Struct is immutable")

    def __reduce__(self):  # plain data: rebuilt from its elements
        return (Struct, (self._elements,))

    def __getattr__(self, name):
        names = object.__getattribute__(self, "_names")
        if name in names:
            return self._elements[names[name]][1]
        valid = ", ".join(names) or "none"
        raise AttributeError(f"There is no such attribute {name!r} in this struct. "
                             f"Valid attributes: ({valid})")

    def __getitem__(self, key):
        if isinstance(key, str):
            if key not in self._names:
                raise KeyError(f"No element named {key!r}; names: "
                               f"{', '.join(self._names) or 'none'}.")
            return self._elements[self._names[key]][1]
        if isinstance(key, slice):
            return Struct(self._elements[key])
        try:
            return self._elements[key][1]
        except IndexError:
            raise IndexError(f"Element index {key} is out of range, the struct has "
                             f"{len(self._elements)} elements.") from None

    def __len__(self):
        return len(self._elements)

    def __iter__(self):
        return (value for _, value in self._elements)

    def __dir__(self):
        return list(super().__dir__()) + list(self._names)

    def items(self):
        """The `(name or None, value)` pairs."""
        return self._elements

    def names(self):
        return tuple(name for name, _ in self._elements)

    def to_dict(self, recursive=False):
        """An OrderedDict of the named elements (all elements must be named)."""
        unnamed = [i for i, (name, _) in enumerate(self._elements) if name is None]
        if unnamed:
            raise ValueError(f"Struct.to_dict: elements {unnamed} have no name.")
        return collections.OrderedDict(
            (name, value.to_dict(True) if recursive and isinstance(value, Struct) else value)
            for name, value in self._elements)

    def __eq__(self, other):
        """Equal to a Struct with the same names and values; also to a mapping with the same
        names and values (all elements named), and to a tuple or list of the same values."""
        if isinstance(other, Struct):
            return self.names() == other.names() and all(
                _values_equal(a, b) for a, b in zip(self, other))
        if isinstance(other, collections.abc.Mapping):
            names = self.names()
            return None not in names and set(names) == set(other) and len(names) == len(
                other) and all(_values_equal(v, other[n]) for n, v in self._elements)
        if isinstance(other, (tuple, list)):
            return len(other) == len(self) and all(
                _values_equal(a, b) for a, b in zip(self, other))
        return NotImplemented

    def __hash__(self):
        return hash(self.names())

    def __repr__(self):
        return "Struct([" + ", ".join(f"({n!r}, {v!r})" for n, v in self._elements) + "])"

    def __str__(self):
        return "<" + ",".join(
            _format(v) if n is None else f"{n}={_format(v)}" for n, v in self._elements) + ">"


def _format(value) -> str:
    if isinstance(value, (float, np.floating)):
        rounded = float(f"{float(value):.6g}")
        return repr(rounded)
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return _format(value[()])
    return str(value)


def _values_equal(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and bool(np.all(a == b))
    return bool(a == b)


# Python containers --------------------------------------------------------------------------

def container_fields(value):
    """The field names of an attrs or dataclass instance, else None."""
    if isinstance(value, type):
        return None
    if dataclasses.is_dataclass(value):
        return [f.name for f in dataclasses.fields(value)]
    attr = sys.modules.get("attr")
    if attr is not None and attr.has(type(value)):
        return [f.name for f in attr.fields(type(value))]
    return None


def is_namedtuple(value) -> bool:
    return isinstance(value, tuple) and hasattr(type(value), "_fields")


def python_items(value):
    """The elements of a Python container used as a struct value, and the container to
    give results back in: `(((name or None, element), ...), container)`, or `None` when
    `value` is not a container. A dict's keys are sorted unless it is ordered (an
    `OrderedDict`); namedtuples, attrs classes and dataclasses give their fields in order;
    lists and tuples are unnamed. (TF tensors and NumPy arrays are not containers.)"""
    if isinstance(value, Struct):
        return tuple(value.items()), None
    if isinstance(value, collections.abc.Mapping):
        keys = list(value) if isinstance(value, collections.OrderedDict) else sorted(value)
        container = collections.OrderedDict if type(value) is dict else type(value)
        return tuple((k, value[k]) for k in keys), container
    if is_namedtuple(value):
        return tuple(zip(value._fields, value)), type(value)
    fields = container_fields(value)
    if fields is not None:
        return tuple((name, getattr(value, name)) for name in fields), type(value)
    if isinstance(value, (list, tuple)):
        return tuple((None, v) for v in value), tuple
    return None


def pack(container, pairs):
    """The Python value of a struct: `pairs` of (name or None, element) in `container` (as
    `python_items` gives it; `None` gives an `fcore.Struct`). Plain dicts come back as
    OrderedDicts, in the struct's order."""
    pairs = list(pairs)
    values = [v for _, v in pairs]
    if container is None:
        return Struct(pairs)
    if container in (tuple, list):
        return container(values)
    if isinstance(container, type) and issubclass(container, collections.abc.Mapping):
        ordered = collections.OrderedDict(pairs)
        return ordered if container in (dict, collections.OrderedDict) else container(ordered)
    if isinstance(container, type) and issubclass(container, tuple):  # a namedtuple
        return container(*values)
    return container(**dict(pairs))  # attrs or dataclass
