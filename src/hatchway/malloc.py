"""Keep large buffers out of glibc's arenas, so memory stays flat however big a blob is.

Blobs stream through 1 MiB buffers. glibc serves allocations that large with mmap at
first, but raises its mmap threshold after each free (up to 32 MiB), after which the
buffers come from per-thread arenas that keep the memory once released: a process with
several threads then grows by tens of MiB per thread, more under load. Fixing the
threshold (which also turns the dynamic adjustment off) makes every large buffer go back
to the OS when freed.
"""

from __future__ import annotations

import ctypes
import sys

_M_MMAP_THRESHOLD = -3
THRESHOLD = 256 * 1024


def pin_mmap_threshold(threshold: int = THRESHOLD) -> bool:
    """True if glibc accepted the setting (False elsewhere, which is harmless)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))
