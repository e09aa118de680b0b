"""The federated type system."""

from fcore.types.core import (AbstractType, FederatedType, FunctionType, PlacementType,
                              SequenceType, StructType, TensorType, Type)
from fcore.types.conversion import to_type
from fcore.types.errors import TypeMismatchError, TypeParseError
from fcore.types.placements import CLIENTS, SERVER, PlacementLiteral

__all__ = [
    "AbstractType", "FederatedType", "FunctionType", "PlacementType", "SequenceType",
    "StructType", "TensorType", "Type", "to_type", "TypeMismatchError", "TypeParseError",
    "CLIENTS", "SERVER", "PlacementLiteral",
]
