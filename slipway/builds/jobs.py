"""Build operations, run on workers (placeholder)."""
