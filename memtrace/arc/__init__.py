"""Arc, the store of every org's memories: where each org's Arc is, how to talk to it, how to guard it.

    binding.py    ArcBinding (where an org's memories live) and decrypting a stored binding
    client.py     pooled aiohttp sessions, the one place Arc's transport errors are translated
    breaker.py    per-org circuit breaker and health record (internal: used through the registry)
    registry.py   org → binding, every call guarded by that org's breaker
    encode.py     the columnar msgpack body of a write
"""

from memtrace.arc.binding import ArcBinding, decrypt_binding, decrypt_bindings
from memtrace.arc.client import ArcPool, ArcResult, write_refusal
from memtrace.arc.encode import encode_rows
from memtrace.arc.registry import ArcRegistry

__all__ = [
    "ArcBinding",
    "ArcPool",
    "ArcRegistry",
    "ArcResult",
    "decrypt_binding",
    "decrypt_bindings",
    "encode_rows",
    "write_refusal",
]
