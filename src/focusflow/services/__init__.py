"""System services of a network: trust (a CA and its transparency log)."""
