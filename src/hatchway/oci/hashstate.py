"""SHA-256 whose running state can be saved and restored, from OpenSSL's libcrypto.

An upload session continued by another worker (or after a restart) must go on hashing
where the previous request stopped; hashlib cannot export its state, and re-reading
everything received so far makes chunked uploads quadratic. OpenSSL's SHA256_CTX is a
plain struct, so its bytes are the state (as distribution stores Go's marshalled hash
state). ctypes releases the GIL during each call, so hashing still runs beside the
event loop. Where libcrypto is not available the caller falls back to hashlib and
re-reads instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

_CTX_SIZE = 112  # sizeof(SHA256_CTX): h[8], Nl, Nh, data[16], num, md_len (32-bit each)
_STATE_TAG = b"hw-sha256-ossl-v1:"


def _load() -> Any:
    name = ctypes.util.find_library("crypto")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
        init, update, final = lib.SHA256_Init, lib.SHA256_Update, lib.SHA256_Final
    except (OSError, AttributeError):
        return None
    init.argtypes = [ctypes.c_void_p]
    update.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    final.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    for func in (init, update, final):
        func.restype = ctypes.c_int
    return lib


_lib = _load()


def available() -> bool:
    return _lib is not None


class ResumableSha256:
    """A hashlib-like SHA-256 with :meth:`state` and :meth:`from_state`."""

    name = "sha256"

    def __init__(self) -> None:
        if _lib is None:
            raise RuntimeError("libcrypto is not available")
        self._ctx = ctypes.create_string_buffer(_CTX_SIZE)
        _lib.SHA256_Init(self._ctx)

    def update(self, data: bytes | memoryview, /) -> None:
        raw = data if isinstance(data, bytes) else bytes(data)
        _lib.SHA256_Update(self._ctx, raw, len(raw))

    def copy(self) -> ResumableSha256:
        clone = ResumableSha256.__new__(ResumableSha256)
        clone._ctx = ctypes.create_string_buffer(self._ctx.raw, _CTX_SIZE)
        return clone

    def digest(self) -> bytes:
        out = ctypes.create_string_buffer(32)
        _lib.SHA256_Final(out, self.copy()._ctx)
        return out.raw

    def hexdigest(self) -> str:
        return self.digest().hex()

    def state(self) -> bytes:
        return _STATE_TAG + self._ctx.raw

    @classmethod
    def from_state(cls, state: bytes) -> ResumableSha256 | None:
        """Restore a saved state; None if it is not one this build wrote."""
        if _lib is None or not state.startswith(_STATE_TAG):
            return None
        raw = state[len(_STATE_TAG) :]
        if len(raw) != _CTX_SIZE:
            return None
        restored = cls.__new__(cls)
        restored._ctx = ctypes.create_string_buffer(raw, _CTX_SIZE)
        return restored
