"""Intrinsics: the built-in federated operators, their type rules, and the user functions."""
