"""The intermediate representation: immutable, type-checked nodes, printed as text."""

from fcore.ir.nodes import (Block, Call, Intrinsic, Lambda, Literal, Node, Placement,
                            Reference, Selection, Struct, TFLeaf)
from fcore.ir.printer import to_text

__all__ = ["Block", "Call", "Intrinsic", "Lambda", "Literal", "Node", "Placement", "Reference",
           "Selection", "Struct", "TFLeaf", "to_text"]
