"""How long does ``flywheel --help`` take to start? Target: under 0.3 s.

Prints, from one run on this machine, the best of several fresh processes for ``flywheel --help``
and for a bare ``python -c pass``, and their ratio: the CLI's own start-up cost over the
interpreter's. KFP, boto3 and the Kubernetes client are imported by the commands that use them,
never by ``--help``.

Run with ``.venv/bin/python benchmarks/cli_startup.py``.
"""

from __future__ import annotations

import subprocess
import sys
import time

TARGET_SECONDS = 0.3
REPETITIONS = 7


def best_seconds(command: list[str]) -> float:
    best = float("inf")
    for _ in range(REPETITIONS):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    interpreter = best_seconds([sys.executable, "-c", "pass"])
    cli = best_seconds([sys.executable, "-m", "flywheel.pipelines.cli", "--help"])
    verdict = "meets" if cli < TARGET_SECONDS else "MISSES"
    print(f"python -c pass:   {interpreter:.3f} s")
    print(f"flywheel --help:  {cli:.3f} s ({cli / interpreter:.1f}x the bare interpreter)")
    print(f"target < {TARGET_SECONDS} s: {verdict}")


if __name__ == "__main__":
    main()
