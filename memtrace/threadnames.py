"""OS-level names for the threads Memtrace starts, so `top -H`, `ps -L` and the perf report can tell them apart.

Python's thread names stay inside the interpreter; Linux shows every thread of a worker as `python`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

PR_SET_NAME = 15
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True) if sys.platform == "linux" else None


def name_os_thread(name: str) -> None:
    """Name the calling thread (Linux keeps 15 bytes); a no-op elsewhere or if the call fails."""
    if _libc is not None:
        _libc.prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)
