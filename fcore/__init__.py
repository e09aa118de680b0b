"""fcore: a typed federated-computation language with TensorFlow leaves.

The public API is curated here; the implementation lives in the subpackages.
"""

from fcore.struct import Struct
from fcore.syntax.types import parse_type
from fcore.types import (CLIENTS, SERVER, AbstractType, FederatedType, FunctionType,
                         PlacementLiteral, PlacementType, SequenceType, StructType, TensorType,
                         Type, TypeMismatchError, TypeParseError, to_type)

__all__ = [
    "AbstractType", "CLIENTS", "FederatedType", "FunctionType", "PlacementLiteral",
    "PlacementType", "SERVER", "SequenceType", "Struct", "StructType", "TensorType", "Type",
    "TypeMismatchError", "TypeParseError", "parse_type", "to_type",
]
