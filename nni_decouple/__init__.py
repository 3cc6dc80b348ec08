"""nni-decouple."""
