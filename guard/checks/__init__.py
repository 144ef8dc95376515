"""The checks of the request path: input (before the upstream) and output (what the model generates)."""
