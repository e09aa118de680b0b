"""Running computations: converting call-time values and executing them."""
