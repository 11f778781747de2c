"""Start-up time of the client commands (and the credential helper docker runs on every
command): wall time and CPU time (user + system) of each, over several runs.

    .venv/bin/python bench/startup.py [--runs 15]

The registry address is one where nothing listens, so ``tags`` measures start-up, the
client's set-up and one refused connection. On a shared, loaded machine the wall time
swings with the load; CPU time is what an idle machine's wall time would be, near enough.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
UNREACHABLE = "127.0.0.1:9"
CASES: list[tuple[str, list[str]]] = [
    ("hatchway --help", ["hatchway", "--help"]),
    ("hatchway login --help", ["hatchway", "login", "--help"]),
    ("hatchway push --help", ["hatchway", "push", "--help"]),
    ("hatchway version", ["hatchway", "version"]),
    ("hatchway tags (refused)", ["hatchway", "tags", f"{UNREACHABLE}/a/b"]),
    ("docker-credential-hatchway list", ["docker-credential-hatchway", "list"]),
]


def _one(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [str(BIN / argv[0]), *argv[1:]],
        input=b"",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,
            "DOCKER_CONFIG": str(Path(home, "docker")),
            "HATCHWAY_CREDENTIALS_BACKEND": "file",
            "HATCHWAY_CREDENTIALS_PASSPHRASE": "bench",
        }
        if os.environ.get("PYTHONPATH"):  # to measure another checkout with this venv
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        print(f"{'command':36} {'wall median':>12} {'wall min':>10} {'cpu median':>11}")
        for label, argv in CASES:
            _one(argv, env)  # warm the page cache and the bytecode cache
            runs = [_one(argv, env) for _ in range(args.runs)]
            walls, cpus = [w for w, _ in runs], [c for _, c in runs]
            print(
                f"{label:36} {statistics.median(walls):11.3f}s {min(walls):9.3f}s "
                f"{statistics.median(cpus):10.3f}s"
            )
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
