"""Memtrace: durable, queryable, multi-tenant memory for AI agents, stored in Arc."""

__version__ = "0.1.0"

__all__ = ["__version__"]
