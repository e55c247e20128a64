"""Focus states of the previous release, kept as test data (README.md)."""
