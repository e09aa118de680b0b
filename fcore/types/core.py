"""The federated type system: immutable, interned type classes.

Building the same type twice returns the same object, so comparing types is cheap. `str()`
gives the compact notation of TensorFlow Federated (`<a=int32,b=float32[?]>@SERVER`),
`formatted()` an indented multi-line view, and `repr()` the constructor form.
"""

from __future__ import annotations

import re
import weakref

import numpy as np

from fcore.types import dtypes, placements

NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_/]*\Z")
ABSTRACT_PATTERN = re.compile(r"[A-Z][A-Za-z0-9_]*\Z")


class _Interned(type):
    """Metaclass: `cls(*args)` normalises the arguments, then returns a cached instance."""

    def __call__(cls, *args, **kwargs):
        key = cls._normalize(*args, **kwargs)
        # Equality ignores Python containers, but interning must not mix them up.
        fingerprint = _fingerprint(key)
        cache = cls.__dict__["_cache"]
        instance = cache.get((key, fingerprint))
        if instance is None:
            instance = cls.__new__(cls)
            instance._init(*key)
            object.__setattr__(instance, "_fp", fingerprint)
            cache[(key, fingerprint)] = instance
        return instance


def _fingerprint(value):
    """The Python containers recorded anywhere in `value` (a type, or a tuple of parts)."""
    if isinstance(value, Type):
        return value._fp
    if isinstance(value, tuple):
        return tuple(_fingerprint(v) for v in value)
    return value if isinstance(value, type) else None


class Type(metaclass=_Interned):
    """Base class of all fcore types."""

    __slots__ = ("_hash", "_fp", "__weakref__")
    _cache: weakref.WeakValueDictionary = weakref.WeakValueDictionary()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._cache = weakref.WeakValueDictionary()

    def __setattr__(self, key, value):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _set(self, **fields):
        for key, value in fields.items():
            object.__setattr__(self, key, value)

    def _key(self):
        raise NotImplementedError

    def __eq__(self, other):
        return self is other or (type(other) is type(self) and self._key() == other._key())

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return self._hash

    def __str__(self) -> str:
        from fcore.types import printing
        return printing.compact(self)

    def formatted(self, width: int = 80) -> str:
        """The type as indented lines, breaking only the parts longer than `width`."""
        from fcore.types import printing
        return printing.formatted(self, width)

    def is_assignable_from(self, other: "Type") -> bool:
        """True if a value of type `other` may be used where this type is expected."""
        from fcore.types import assignability
        return assignability.first_difference(self, other) is None

    def is_equivalent_to(self, other: "Type") -> bool:
        """True if each of the two types is assignable from the other."""
        return self.is_assignable_from(other) and other.is_assignable_from(self)

    def check_assignable_from(self, other: "Type") -> None:
        """Raises `fcore.TypeMismatchError` if `other` is not assignable to this type."""
        from fcore.types import assignability
        assignability.check_assignable(self, other)

    def children(self):
        """The directly contained types, in order."""
        return ()

    def __reduce__(self):
        from fcore.types import conversion
        return (conversion.parse_type_from_reduce, (str(self),))


class TensorType(Type):
    """A tensor: a dtype and a shape. `shape=None` means the rank is unknown."""

    __slots__ = ("dtype", "shape")

    @staticmethod
    def _normalize(dtype, shape=()):
        try:
            dtype = dtypes.to_dtype(dtype)
        except TypeError as e:
            raise TypeError(f"TensorType: {e}") from None
        return dtype, _to_shape(shape)

    def _init(self, dtype, shape):
        self._set(dtype=dtype, shape=shape, _hash=hash(("tensor", dtype, shape)))

    def _key(self):
        return self.dtype, self.shape

    @property
    def rank(self):
        return None if self.shape is None else len(self.shape)

    def is_fully_defined(self) -> bool:
        return self.shape is not None and None not in self.shape

    def __repr__(self):
        shape = "None" if self.shape is None else repr(list(self.shape))
        return f"TensorType({dtypes.dtype_name(self.dtype)!r}, {shape})"


def _to_shape(shape):
    if shape is None:
        return None
    if hasattr(shape, "as_list") and hasattr(shape, "rank"):  # tf.TensorShape
        return None if shape.rank is None else tuple(_to_dim(d) for d in shape.as_list())
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        return (_to_dim(shape),)
    if isinstance(shape, (list, tuple)):
        return tuple(_to_dim(d) for d in shape)
    raise TypeError(f"TensorType: expected a shape (a list or tuple of ints and None, or None "
                    f"for unknown rank), found {shape!r}.")


def _to_dim(dim):
    dim = getattr(dim, "value", dim)  # tf.compat.v1.Dimension
    if dim is None:
        return None
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 0:
        raise TypeError(f"TensorType: expected a dimension (an int >= 0 or None), found {dim!r}.")
    return int(dim)


class StructType(Type):
    """An ordered tuple of elements, each with an optional name.

    `elements` may be a list of `(name, type)` pairs, a list of types, a mix, a dict, or a
    namedtuple/attrs/dataclass instance whose fields are types. The Python container, if any,
    is kept in `python_container` for converting values back; it does not affect equality.
    """

    __slots__ = ("_elements", "_names", "python_container")

    @staticmethod
    def _normalize(elements=(), container=None):
        from fcore.types import conversion
        items, detected = conversion.struct_items(elements)
        container = container if container is not None else detected
        seen = set()
        normalized = []
        for index, (name, element) in enumerate(items):
            if name is not None:
                if not isinstance(name, str) or not NAME_PATTERN.match(name):
                    raise ValueError(
                        f"StructType: element {index} has an invalid name {name!r}; names start "
                        f"with a letter or '_' and hold letters, digits, '_' or '/'.")
                if name in seen:
                    raise ValueError(f"StructType: duplicate element name {name!r}.")
                seen.add(name)
            try:
                normalized.append((name, conversion.to_type(element)))
            except (TypeError, ValueError) as e:
                where = name if name is not None else f"[{index}]"
                raise type(e)(f"StructType element {where}: {e}") from None
        return tuple(normalized), container

    def _init(self, elements, container):
        names = {name: i for i, (name, _) in enumerate(elements) if name is not None}
        self._set(_elements=elements, _names=names, python_container=container,
                  _hash=hash(("struct", elements)))

    def _key(self):
        return self._elements

    def items(self):
        """The `(name or None, type)` pairs."""
        return self._elements

    def names(self):
        return tuple(name for name, _ in self._elements)

    def children(self):
        return tuple(t for _, t in self._elements)

    def __len__(self):
        return len(self._elements)

    def __iter__(self):
        return iter(self.children())

    def __getitem__(self, key):
        if isinstance(key, str):
            try:
                return self._elements[self._names[key]][1]
            except KeyError:
                raise KeyError(f"No element named {key!r} in {self}; names: "
                               f"{', '.join(n for n in self.names() if n) or 'none'}.") from None
        return self._elements[key][1]

    def index_of(self, name: str) -> int | None:
        return self._names.get(name)

    def __getattr__(self, name):
        names = object.__getattribute__(self, "_names")
        if name in names:
            return self._elements[names[name]][1]
        raise AttributeError(f"There is no element named {name!r} in {self}.")

    def __repr__(self):
        parts = [f"({n!r}, {t!r})" if n is not None else repr(t) for n, t in self._elements]
        return f"StructType([{', '.join(parts)}])"


class SequenceType(Type):
    """A sequence (a `tf.data.Dataset` at run time) of elements of one type. Prints `T*`."""

    __slots__ = ("element",)

    @staticmethod
    def _normalize(element):
        from fcore.types import conversion
        element = conversion.to_type(element)
        _forbid(element, (FunctionType, FederatedType, PlacementType, SequenceType),
                "SequenceType", "a sequence element")
        return (element,)

    def _init(self, element):
        self._set(element=element, _hash=hash(("sequence", element)))

    def _key(self):
        return self.element

    def children(self):
        return (self.element,)

    def __repr__(self):
        return f"SequenceType({self.element!r})"


class FunctionType(Type):
    """A function from `parameter` (or no parameter, `None`) to `result`."""

    __slots__ = ("parameter", "result")

    @staticmethod
    def _normalize(parameter, result):
        from fcore.types import conversion
        return conversion.to_type(parameter), conversion.to_type(result)

    def _init(self, parameter, result):
        if result is None:
            raise TypeError("FunctionType: the result type must not be None.")
        self._set(parameter=parameter, result=result,
                  _hash=hash(("function", parameter, result)))

    def _key(self):
        return self.parameter, self.result

    def children(self):
        return (self.result,) if self.parameter is None else (self.parameter, self.result)

    def __repr__(self):
        return f"FunctionType({self.parameter!r}, {self.result!r})"


class FederatedType(Type):
    """A value placed at `SERVER` or `CLIENTS`.

    `all_equal` defaults to the placement's default: True at SERVER (one value, printed
    `T@SERVER`), False at CLIENTS (one value per client, printed `{T}@CLIENTS`).
    """

    __slots__ = ("member", "placement", "all_equal")

    @staticmethod
    def _normalize(member, placement, all_equal=None):
        from fcore.types import conversion
        if isinstance(placement, Type):
            raise TypeError(f"FederatedType: expected a placement (SERVER or CLIENTS) as the "
                            f"placement, found the type {placement}.")
        placement = placements.to_placement(placement)
        member = conversion.to_type(member)
        _forbid(member, (FederatedType, FunctionType, PlacementType), "FederatedType",
                "a federated member")
        if all_equal is None:
            all_equal = placement.default_all_equal
        if not isinstance(all_equal, (bool, np.bool_)):
            raise TypeError(f"FederatedType: all_equal must be True, False or None, found "
                            f"{all_equal!r}.")
        return member, placement, bool(all_equal)

    def _init(self, member, placement, all_equal):
        self._set(member=member, placement=placement, all_equal=all_equal,
                  _hash=hash(("federated", member, placement.name, all_equal)))

    def _key(self):
        return self.member, self.placement.name, self.all_equal

    def children(self):
        return (self.member,)

    def __repr__(self):
        return (f"FederatedType({self.member!r}, {self.placement.name}, "
                f"all_equal={self.all_equal})")


class PlacementType(Type):
    """The type of placement literals. Prints `placement`."""

    __slots__ = ()

    @staticmethod
    def _normalize():
        return ()

    def _init(self):
        self._set(_hash=hash("placement"))

    def _key(self):
        return ()

    def __repr__(self):
        return "PlacementType()"


class AbstractType(Type):
    """A type variable such as `T`, used in intrinsic signatures."""

    __slots__ = ("label",)

    @staticmethod
    def _normalize(label):
        if not isinstance(label, str) or not ABSTRACT_PATTERN.match(label):
            raise ValueError(f"AbstractType: expected a label that starts with an upper-case "
                             f"letter (such as 'T'), found {label!r}.")
        return (label,)

    def _init(self, label):
        self._set(label=label, _hash=hash(("abstract", label)))

    def _key(self):
        return self.label

    def __repr__(self):
        return f"AbstractType({self.label!r})"


def find_path(type_, kinds, path=""):
    """The path (`[0].a`) to the first part of `type_` that is an instance of `kinds`."""
    if isinstance(type_, kinds):
        return path or "the whole type"
    if isinstance(type_, StructType):
        for index, (name, element) in enumerate(type_.items()):
            found = find_path(element, kinds, f"{path}.{name}" if name else f"{path}[{index}]")
            if found is not None:
                return found
    elif isinstance(type_, SequenceType):
        return find_path(type_.element, kinds, path + "*")
    return None


def _forbid(type_, kinds, constructor, role):
    if type_ is None:
        raise TypeError(f"{constructor}: {role} must be a type, found None.")
    where = find_path(type_, kinds)
    if where is None:
        return
    found = _part_at(type_, kinds)
    if found is type_:
        raise TypeError(f"{constructor}: {role} cannot be a {type(found).__name__}, "
                        f"found {found}.")
    raise TypeError(f"{constructor}: {role} cannot contain a {type(found).__name__}, "
                    f"found {found} at {where} of {type_}.")


def _part_at(type_, kinds):
    if isinstance(type_, kinds):
        return type_
    for child in type_.children() if not isinstance(type_, FunctionType) else ():
        found = _part_at(child, kinds)
        if found is not None:
            return found
    return None
