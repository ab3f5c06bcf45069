#!/usr/bin/env python3
"""Load benchmark: CLIENTS API clients poll deploy logs while PROJECTS projects
deploy at once through two workers; prints request latencies (p50, p95, max)
and the wall time until every deploy ended. Figures: docs/benchmarks.md.

Usage (as root, like the real-host tests; PostgreSQL and Redis running):
    .venv/bin/python bench/load.py [--clients 50] [--poll 0.25]

It runs bench/scenario_load.py under pytest to reuse the test infrastructure
(three real sshd targets, the SSH git server, real qcluster workers) and a real
gunicorn, all on loopback addresses; every loop is bounded in count and time.
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
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--poll", type=float, default=0.25, help="seconds each client waits between requests")
    args = parser.parse_args()
    env = dict(os.environ)
    # Its own database, so the benchmark never collides with a test run
    # (pytest-django creates "test_" + this name).
    env.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/walle_bench")
    env.setdefault("WALLE_REDIS_URL", "redis://127.0.0.1:6379/0")
    env.update(BENCH_CLIENTS=str(args.clients), BENCH_POLL=str(args.poll))
    command = [sys.executable, "-m", "pytest", "bench/scenario_load.py", "-p", "no:cacheprovider",
               "-q", "-s", "--no-header", "-W", "ignore::pytest.PytestAssertRewriteWarning"]
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
