"""Memories: the service every read and write of the API goes through, and what it is built from.

    service.py    MemoryService: writes (journal), reads (Arc merged with recent local rows), counts, context
    model.py      the API's request and response Structs
    build.py      requests → MemoryRows → API objects
    query.py      the Arc SQL builder and the decoding of Arc's answers (internal to the service)
    context.py    the session-context markdown
    dedup.py      the default dedup key
    forget.py     Forgetter: durable deletions applied to Arc
    retention.py  retention policies turned into deletions
"""

from memtrace.memory.forget import Forgetter
from memtrace.memory.retention import apply_policies
from memtrace.memory.service import CLAIM_S, CONTEXT_MAX_ROWS, MemoryService

__all__ = [
    "CLAIM_S",
    "CONTEXT_MAX_ROWS",
    "Forgetter",
    "MemoryService",
    "apply_policies",
]
