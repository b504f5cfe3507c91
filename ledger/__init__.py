"""The event log: event types, the PostgreSQL event store, the hash chain, settings.

This package knows nothing of HTTP or Kubernetes; everything above it imports it, never the reverse.
"""
