"""The network's trust services: a certificate authority and its transparency log."""
