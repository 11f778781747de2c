"""Progress of blob transfers: rich bars (bytes, speed, ETA) on a terminal, one plain line
per blob start and finish otherwise (CI logs, pipes), nothing for library callers.

Transfers report absolute positions, not increments, so a chunk that is sent again after
a retry never counts twice. rich is imported only when bars are shown: it costs more
start-up time than the rest of a client command.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, TextIO

if TYPE_CHECKING:
    from rich.progress import TaskID


class Reporter(Protocol):
    def begin(self, key: str, label: str, total: int) -> None: ...
    def update(self, key: str, done: int) -> None: ...
    def end(self, key: str, outcome: str) -> None: ...
    def note(self, message: str) -> None: ...


class _Null:
    def begin(self, key: str, label: str, total: int) -> None:
        pass

    def update(self, key: str, done: int) -> None:
        pass

    def end(self, key: str, outcome: str) -> None:
        pass

    def note(self, message: str) -> None:
        pass


NULL_REPORTER: Reporter = _Null()


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class LineReporter:
    """``<label>: start (<size>)`` and ``<label>: <outcome> in <s> (<rate>)`` lines."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._tasks: dict[str, tuple[str, int, float]] = {}
        self._done: dict[str, int] = {}

    def _print(self, line: str) -> None:
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()

    def begin(self, key: str, label: str, total: int) -> None:
        self._tasks[key] = (label, total, time.monotonic())
        self._done[key] = 0
        self._print(f"{label}: start ({human(total)})")

    def update(self, key: str, done: int) -> None:
        self._done[key] = done

    def end(self, key: str, outcome: str) -> None:
        label, total, started = self._tasks.pop(key)
        moved = self._done.pop(key, 0)
        elapsed = time.monotonic() - started
        if not moved:  # exists, mounted, already here: nothing was transferred
            self._print(f"{label}: {outcome} ({human(total)})")
            return
        rate = f", {human(moved / elapsed)}/s" if elapsed > 0 else ""
        self._print(f"{label}: {outcome} {human(total)} in {elapsed:.1f}s{rate}")

    def note(self, message: str) -> None:
        self._print(message)


class RichReporter:
    """Bars on stderr, one per blob, removed as each finishes."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._labels: dict[str, tuple[str, int]] = {}

    def __enter__(self) -> RichReporter:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def begin(self, key: str, label: str, total: int) -> None:
        self._labels[key] = (label, total)
        self._tasks[key] = self._progress.add_task(label, total=total)

    def update(self, key: str, done: int) -> None:
        task = self._tasks.get(key)
        if task is not None:
            self._progress.update(task, completed=done)

    def end(self, key: str, outcome: str) -> None:
        task = self._tasks.pop(key, None)
        if task is None:
            return
        label, total = self._labels.pop(key)
        self._progress.update(task, completed=total, description=f"{label}: {outcome}")

    def note(self, message: str) -> None:
        self._progress.console.print(message, markup=False, highlight=False)
