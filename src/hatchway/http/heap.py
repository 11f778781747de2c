"""Keep a worker's malloc heap from going back and forth to the kernel while blobs stream.

A blob push receives its body in 1 MiB reads, and each read (and aiohttp's copy of its
body part) is a new bytes object of about a MiB. glibc's malloc serves such blocks from
fresh mmap()s, or trims the top of its heap as soon as they are freed, so every buffer's
pages were faulted in and zeroed by the kernel again: ~80,000 page faults per GB pushed,
a sixth of the worker's CPU per GB (bench/README.md). With a higher mmap threshold and
trim threshold the same few MiB of heap are reused from one read to the next. What a
worker may keep unreturned is bounded by the trim threshold.
"""

from __future__ import annotations

import ctypes
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 4 * 1024 * 1024
TRIM_THRESHOLD = 16 * 1024 * 1024


def keep_buffers() -> bool:
    """Tune glibc's malloc for this process; False where that is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt, nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
