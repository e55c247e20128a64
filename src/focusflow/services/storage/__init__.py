"""Storage services: private blobs sealed for their recipients and split into
erasure-coded pieces (docs/storage.md)."""
