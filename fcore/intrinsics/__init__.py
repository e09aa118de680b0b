"""Intrinsics: the built-in federated operators and their type rules (`definitions`). The
user functions that call them while tracing are in `fcore.tracing.intrinsics`."""
