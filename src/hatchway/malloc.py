"""Bound glibc's malloc arenas, so memory stays flat however big a blob is.

Blobs stream through 1 MiB buffers on several threads (hashing, writing, uploading). glibc
gives busy threads arenas of their own, and freed 1 MiB buffers stay in them: under load
a process grows by tens of MiB per thread (a 1 GiB push once peaked at 276 MiB instead of
the usual 87). Two arenas keep that bounded. (Pinning the mmap threshold instead also
bounds it, but every buffer then costs fresh zeroed pages: pushes ran 25 % slower.)
"""

from __future__ import annotations

import ctypes
import sys

_M_ARENA_MAX = -8
ARENAS = 2


def limit_arenas(arenas: int = ARENAS) -> bool:
    """True if glibc accepted the setting (False elsewhere, which is harmless)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, arenas))
