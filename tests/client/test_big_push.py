"""A 1 GiB layer is pushed and pulled in flat memory: the client streams it (peak RSS far
below the layer's size) and, not on a terminal, prints one plain progress line per blob
start and finish."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.imagefiles import MiB, big_layer_layout
from tests.support.server import HATCHWAY, start_server
from tests.support.store import blob_dir

pytestmark = pytest.mark.e2e

GiB = 1024 * MiB
RSS_LIMIT = 150 * MiB


def _hwm(pid: int) -> int:
    """The process's resident high-water mark (VmHWM) in bytes; 0 before it has exec'd
    the hatchway command (until then it shares this test process's memory) or once gone."""
    try:
        if HATCHWAY.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return 0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def run_measured(args: list[str], err_path: Path) -> tuple[int, int, float]:
    """Exit code, peak RSS in bytes of the command itself, and seconds taken.

    Not ``wait4``'s ru_maxrss: that also counts the moments before exec, when the child
    is still a copy of this (by then large) test process. VmHWM belongs to the exec'd
    program's own address space; it is read until the process exits.
    """
    started = time.monotonic()
    peak = 0
    with err_path.open("w") as err:
        proc = subprocess.Popen([HATCHWAY, *args], stdout=subprocess.DEVNULL, stderr=err)
        while proc.poll() is None:
            peak = max(peak, _hwm(proc.pid))
            time.sleep(0.02)
    return proc.returncode, peak, time.monotonic() - started


def test_a_1_gib_image_moves_in_flat_memory(tmp_path: Path) -> None:
    layout = tmp_path / "huge"
    digest = big_layer_layout(layout, GiB, sparse=True)  # zeros: no disk, no RAM
    server = start_server(tmp_path, workers=1)
    short = digest[:19]
    try:
        code, peak, _ = run_measured(
            ["push", str(layout), f"{server.addr}/t/huge:1"], tmp_path / "push.err"
        )
        lines = (tmp_path / "push.err").read_text().splitlines()
        assert code == 0, lines
        assert peak < RSS_LIMIT, f"push peak RSS {peak / MiB:.0f} MiB"
        assert f"push {short} layer: start (1.0 GiB)" in lines
        assert any(line.startswith(f"push {short} layer: pushed 1.0 GiB in") for line in lines)
        assert not [line for line in lines if "\r" in line or "\x1b" in line]  # no bars
        assert (blob_dir(server.data, digest) / "data").stat().st_size == GiB

        out = tmp_path / "out"
        code, peak, _ = run_measured(
            ["pull", f"{server.addr}/t/huge:1", str(out)], tmp_path / "pull.err"
        )
        lines = (tmp_path / "pull.err").read_text().splitlines()
        assert code == 0, lines
        assert peak < RSS_LIMIT, f"pull peak RSS {peak / MiB:.0f} MiB"
        assert any(line.startswith(f"pull {short} layer: pulled 1.0 GiB in") for line in lines)
        assert (out / "blobs" / "sha256" / digest.split(":")[1]).stat().st_size == GiB
    finally:
        server.stop()
        # 2 GiB of real data: do not leave it for pytest's kept temp directories.
        shutil.rmtree(server.data, ignore_errors=True)
        shutil.rmtree(tmp_path / "out", ignore_errors=True)
