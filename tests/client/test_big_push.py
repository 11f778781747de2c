"""A 1 GiB layer is pushed and pulled in flat memory: the client streams it (peak RSS far
below the layer's size) and, not on a terminal, prints one plain progress line per blob
start and finish."""

from __future__ import annotations

import os
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


def run_measured(args: list[str], err_path: Path) -> tuple[int, int, float]:
    """Exit code, peak RSS in bytes (``wait4``: this child alone) and seconds taken."""
    started = time.monotonic()
    with err_path.open("w") as err:
        proc = subprocess.Popen([HATCHWAY, *args], stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss * 1024, time.monotonic() - started


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
