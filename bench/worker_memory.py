#!/usr/bin/env python3
"""Worker memory benchmark: a real qcluster worker deploys to a real sshd
target whose pre_release hook prints 200 MB; prints the peak RSS (VmHWM) of
every worker process. Target: under 200 MB. Figures: docs/benchmarks.md.

Usage (as root, like the real-host tests; SQLite by default, or set DATABASE_URL):
    .venv/bin/python bench/worker_memory.py [--mb 200]

It runs bench/scenario_worker_memory.py under pytest to reuse the test
infrastructure (tests/infra: real sshd targets, the SSH git server, the
`qcluster` fixture's real worker process).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="megabytes the hook prints")
    args = parser.parse_args()
    env = dict(os.environ, BENCH_HOOK_MB=str(args.mb))
    command = [sys.executable, "-m", "pytest", "bench/scenario_worker_memory.py", "-p", "no:cacheprovider",
               "-q", "-s", "--no-header", "-W", "ignore::pytest.PytestAssertRewriteWarning"]
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
