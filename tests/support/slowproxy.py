"""A TCP forwarder that makes a real service slow: what the service sends back is passed
on in small pieces at a limited rate, and after ``hold_after`` bytes it waits for the
test to ``release()`` it (or for ``hold_timeout``). It records when it passed on the last
byte, so a test can order what its clients saw against "the upstream finished sending"
without any timing threshold."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

_PIECE = 64 * 1024


class SlowProxy:
    def __init__(
        self,
        target: tuple[str, int],
        *,
        rate: float = 16 * 1024 * 1024,
        hold_after: int | None = None,
        hold_timeout: float = 60.0,
    ) -> None:
        self.target = target
        self.rate = rate  # bytes per second from the service
        self.hold_after = hold_after
        self.hold_timeout = hold_timeout
        self.sent = 0  # bytes passed on from the service
        self.last_sent_at = 0.0  # time.monotonic() of the last byte passed on
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = int(self._listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def release(self) -> None:
        """Let the held bytes go."""
        self._released.set()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._slow_pump, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, dest: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                dest.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dest.shutdown(socket.SHUT_WR)

    def _slow_pump(self, source: socket.socket, dest: socket.socket) -> None:
        try:
            while data := source.recv(_PIECE):
                if self.hold_after is not None and self.sent + len(data) > self.hold_after:
                    self._released.wait(self.hold_timeout)
                time.sleep(len(data) / self.rate)
                dest.sendall(data)
                with self._lock:
                    self.sent += len(data)
                    self.last_sent_at = time.monotonic()
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dest.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._released.set()
        self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
