"""The running version of reconciler (a leaf: the metrics, the API and the CLI report it without
importing the package's public API)."""

__version__ = "0.1.0"
