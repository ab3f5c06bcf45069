#!/usr/bin/env python3
"""Fan-out benchmark: Walle's real deploy path against the least-work baseline
(one local checkout, ``rsync -az --link-dest`` to every host in parallel,
``ln -sfn`` + ``mv -fT``), on real sshd hosts behind an emulated uplink.
Prints each figure and its ratio to the baseline. Figures: docs/benchmarks.md.

Usage (as root, like the real-host tests; it holds their lock while it runs):
    .venv/bin/python bench/fanout.py [--hosts 1,5,20] [--hog-hosts 20] [--live-log-hosts 20]
        [--files 2000] [--size-mb 20] [--rate-mbit 200] [--delay-ms 2] [--profile]

It runs bench/scenario_fanout.py under pytest to reuse the test infrastructure
(the SSH git server on 127.0.0.10, sshd + nginx target hosts, here on
127.0.0.101 and up, never the tests' addresses) and a real gunicorn for the
live-log figure; every wait is bounded.
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
    parser.add_argument("--hosts", default="1,5,20", help="fleet sizes, comma separated (at most 20)")
    parser.add_argument("--hog-hosts", default="20", help="sizes to run again beside a CPU hog ('' for none)")
    parser.add_argument("--live-log-hosts", type=int, default=20, help="fleet size of the live-log run (0: skip)")
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--size-mb", type=float, default=20.0)
    parser.add_argument("--changed", type=float, default=0.01, help="share of files the second commit changes")
    parser.add_argument("--rate-mbit", type=float, default=200.0, help="the deploy host's whole upload")
    parser.add_argument("--delay-ms", type=float, default=2.0, help="added to every chunk, each way")
    parser.add_argument("--profile", action="store_true", help="cProfile Walle's largest incremental deploy")
    args = parser.parse_args()
    env = dict(os.environ)
    env.setdefault("WALLE_LOG_LEVEL", "WARNING")  # paramiko's and django-q's INFO lines would bury the figures
    env.update(
        BENCH_HOSTS=args.hosts, BENCH_HOG_HOSTS=args.hog_hosts, BENCH_LIVE_LOG_HOSTS=str(args.live_log_hosts),
        BENCH_FILES=str(args.files), BENCH_SIZE_MB=str(args.size_mb), BENCH_CHANGED=str(args.changed),
        BENCH_RATE_MBIT=str(args.rate_mbit), BENCH_DELAY_MS=str(args.delay_ms),
        BENCH_PROFILE="1" if args.profile else "",
    )
    command = [sys.executable, "-m", "pytest", "bench/scenario_fanout.py", "-p", "no:cacheprovider",
               "-q", "-s", "--no-header", "-W", "ignore::pytest.PytestAssertRewriteWarning"]
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
