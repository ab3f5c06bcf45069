"""Session-level preparation of the machine that runs the real-host tests.

Checks prerequisites, serialises concurrent pytest sessions (they would fight
over the same loopback addresses), cleans up after crashed sessions and frees
port 80 from a packaged nginx. Used by plugin.py; no pytest imports here.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.infra.hosts import (
    GIT_USER,
    NSINIT,
    SYSTEM_PATH,
    TARGET_USER,
    can_bind,
    ensure_user,
    revoke_keys,
    tool,
)

LOCK_PATH = Path("/tmp/walle-infra.lock")
REQUIRED_TOOLS = ("sshd", "ssh", "ssh-keygen", "rsync", "git", "git-shell", "nginx", "unshare",
                  "nsenter", "setpriv", "mount", "useradd", "usermod", "ss")
# ss prints a dual-stack [::] listener as "*"; both block every 127.x address.
WILDCARDS = ("0.0.0.0", "*")
SETUP_HINT = "run .ci/setup-hosts.sh as root"


def prerequisites_problem() -> str | None:
    """Why real hosts cannot run here, or None."""
    if os.geteuid() != 0:
        return "real sshd/nginx test hosts need root (namespaces, bind mounts, port 22/80)"
    missing = [name for name in REQUIRED_TOOLS if shutil.which(name, path=SYSTEM_PATH) is None]
    if missing:
        return f"missing tools {', '.join(missing)}; {SETUP_HINT}"
    # Unprivileged containers have root without CAP_SYS_ADMIN: namespaces fail there.
    probe = subprocess.run([tool("unshare"), "--mount", "--pid", "--fork", "--mount-proc", "true"],
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"cannot create mount/pid namespaces: {probe.stderr.strip()}"
    return None


def acquire_session_lock(timeout: float) -> int:
    """Exclusive lock for this pytest process; the kernel drops it if we crash."""
    fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise TimeoutError(
                    f"another pytest session has held {LOCK_PATH} for {timeout:.0f}s "
                    "(the test hosts' addresses can only be used by one session at a time)"
                ) from None
            time.sleep(0.5)


def release_session_lock(fd: int) -> None:
    os.close(fd)


def _processes() -> list[tuple[int, list[str]]]:
    result = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        result.append((int(entry.name), raw.decode(errors="replace").split("\0")))
    return result


def _alive(pid: int) -> bool:
    """True unless the process is gone or a zombie (zombies hold no sockets or mounts)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def kill_leftovers(state_root: Path) -> list[int]:
    """SIGKILL machines left running by a crashed session; return their pids.

    They are recognised by their command line (unshare/nsinit.py with a spec
    under state_root), not by name, so nothing else on the machine is touched.
    Only call this while holding the session lock: otherwise they may be live.
    """
    spec_prefix = f"{state_root}/"
    victims = [pid for pid, argv in _processes()
               if NSINIT.name in " ".join(argv)
               and any(arg.startswith(spec_prefix) and arg.endswith("/nsinit.json") for arg in argv)]
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # PID 1 of a namespace: takes the whole machine down
    if not _wait_until(lambda: not any(_alive(pid) for pid in victims), 10):
        raise RuntimeError(f"leftover test hosts {victims} survived SIGKILL")
    return victims


@dataclass
class Listener:
    host: str
    port: int
    processes: list[tuple[str, int]]  # (command name, pid)

    def describe(self) -> str:
        owners = ", ".join(f"{name} (pid {pid})" for name, pid in self.processes) or "unknown process"
        return f"{owners} listening on {self.host}:{self.port}"


def listeners(port: int) -> list[Listener]:
    """TCP listeners on a port, any address (parsed from `ss -Hltnp`)."""
    output = subprocess.run([tool("ss"), "-Hltnp"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in output.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        host, _, local_port = fields[3].rpartition(":")
        if local_port == str(port):
            owners = [(name, int(pid)) for name, pid in re.findall(r'\("([^"]+)",pid=(\d+)', line)]
            found.append(Listener(host, port, owners))
    return found


def port_problem(address: str, port: int) -> str | None:
    """Who holds address:port (so it cannot be listened on), or None if it is free."""
    if can_bind(address, port):
        return None
    holders = [lis.describe() for lis in listeners(port) if lis.host in (address, *WILDCARDS)]
    return f"{address}:{port} is in use by {'; '.join(holders) or 'an unknown process'}"


def _wildcard_nginx(port: int = 80) -> list[Listener]:
    return [lis for lis in listeners(port)
            if lis.host in WILDCARDS and any(name == "nginx" for name, _ in lis.processes)]


def stop_default_nginx() -> None:
    """Stop a packaged nginx on 0.0.0.0:80: it would own port 80 on every 127.x address.

    Ours never listen on a wildcard address, so this cannot hit a test host.
    """
    if not _wildcard_nginx():
        return
    attempts = [[tool("nginx"), "-s", "quit"]]
    if shutil.which("service", path=SYSTEM_PATH):
        attempts.insert(0, [tool("service"), "nginx", "stop"])
    for argv in attempts:
        subprocess.run(argv, capture_output=True, timeout=60, check=False)  # judged by the port below
        if _wait_until(lambda: not _wildcard_nginx(), 10):
            return
    for listener in _wildcard_nginx():  # e.g. started by hand with another pid file
        for _, pid in listener.processes:
            os.kill(pid, signal.SIGTERM)
    if not _wait_until(lambda: not _wildcard_nginx(), 10):
        raise RuntimeError(f"could not stop nginx on port 80: {_wildcard_nginx()}")


def prepare_machine(state_root: Path) -> None:
    """Idempotent root-namespace setup shared by all test machines."""
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    Path("/data").mkdir(mode=0o755, exist_ok=True)  # mount point of each target's disk
    Path("/srv").mkdir(mode=0o755, exist_ok=True)  # mount point of the git server's disk
    if state_root.exists():
        shutil.rmtree(state_root)  # fresh host keys and disks for every session
    ensure_user(TARGET_USER, "/bin/bash")
    ensure_user(GIT_USER, tool("git-shell"))
    # Keys authorised by an earlier session must not leak into this one.
    revoke_keys(TARGET_USER)
    revoke_keys(GIT_USER)
