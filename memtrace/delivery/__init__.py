"""Delivery: moves journaled memories to each org's Arc (a service between the journal and the Arc client).

    deliverer.py   the lease, the schedule (which orgs flush when), shutdown drain   → Deliverer
    sender.py      one flush: bounded requests, splits, dead letters, per-org backoff → Sender
"""

from memtrace.delivery.deliverer import LEASE_NAME, Deliverer

__all__ = ["LEASE_NAME", "Deliverer"]
