"""PID 1 of one test "machine": bind-mounts its disk, starts its daemons, reaps orphans.

hosts.py runs this file as a script (never imports it), inside fresh namespaces:

    unshare --mount --pid --fork --kill-child --propagation private --mount-proc \
        python nsinit.py /tmp/walle-infra/<machine>/nsinit.json

The JSON spec is {"binds": [[outside_dir, inside_dir], ...], "services": {name: argv}}.
Being PID 1 of a PID namespace means: orphaned processes (e.g. ssh sessions whose
sshd child died) are reparented here, so we must reap them; and when this process
dies the kernel SIGKILLs everything else in the namespace, which is how
TargetHost.kill() simulates a crashed machine. Stdlib only: it runs before any
test code and must not depend on the test environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time


def log(message: str) -> None:
    print(f"nsinit[{time.strftime('%H:%M:%S')}]: {message}", flush=True)


def mount_binds(binds: list[list[str]]) -> None:
    # Propagation is already private (unshare --propagation private), so these
    # mounts are invisible outside and vanish with the namespace.
    for outside, inside in binds:
        subprocess.run(["mount", "--bind", outside, inside], check=True)


def start_services(services: dict[str, list[str]]) -> None:
    for name, argv in services.items():
        pid = os.posix_spawn(argv[0], argv, dict(os.environ))
        log(f"started {name} as pid {pid}: {argv}")


def reap_forever(stopping: list[bool]) -> int:
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            if stopping:
                return 0
            # No children right now; an `nsenter -p` command may still get
            # orphaned to us later, so keep the machine alive and poll.
            time.sleep(0.5)
            continue
        log(f"reaped pid {pid} (wait status {status})")


def main(spec_path: str) -> int:
    with open(spec_path, encoding="utf-8") as spec_file:
        spec = json.load(spec_file)
    stopping: list[bool] = []

    def on_term(signum: int, _frame: object) -> None:
        # Graceful shutdown: TERM every other process of this PID namespace
        # (kill(-1) never leaves the namespace), then exit once all are reaped.
        log(f"signal {signum}: stopping")
        stopping.append(True)
        with contextlib.suppress(ProcessLookupError):  # nothing else running
            os.kill(-1, signal.SIGTERM)

    # PID 1 ignores signals it has no handler for, even from the parent namespace.
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    mount_binds(spec["binds"])
    start_services(spec["services"])
    return reap_forever(stopping)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
