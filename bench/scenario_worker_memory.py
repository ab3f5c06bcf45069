"""The worker-memory scenario behind bench/worker_memory.py (not part of the
test suite: pytest collects tests/ only). A real qcluster worker deploys to a
real sshd target while the target's pre_release hook prints HOOK_MB megabytes;
prints the peak RSS of every worker process. Asserts only that the deploy
worked and that the console was capped as configured."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from releases import workflow
from releases.models import DeployRun, Ticket
from tests.deploy_fixtures import open_approved_ticket, wait_for

HOOK_MB = int(os.environ.get("BENCH_HOOK_MB", "200"))
TARGET_MB = 200
FINAL = {Ticket.Status.SUCCEEDED, Ticket.Status.FAILED}


def tree(root: int) -> list[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def status(pid: int) -> dict[str, str]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def kib(value: str) -> int:
    return int(value.split()[0]) if value else 0


def sample(root: int, into: dict[int, int], names: dict[int, str], stop: threading.Event) -> None:
    """The largest RSS each process of the tree showed (VmHWM: the kernel's
    own high-water mark, so nothing between samples is missed)."""
    while not stop.is_set():
        for pid in tree(root):
            fields = status(pid)
            into[pid] = max(into.get(pid, 0), kib(fields.get("VmHWM", "")))
            names.setdefault(pid, fields.get("Name", "?"))
        stop.wait(0.2)


def test_worker_memory(site, qcluster):
    site.project.pre_release = f"head -c {HOOK_MB * 1_000_000} /dev/zero | tr '\\0' x | fold -w 99"
    site.project.save()
    ticket = open_approved_ticket(site, "v1")
    ticket.hosts.set(site.host_records[:1])  # one target: the hook prints HOOK_MB in all
    before = {pid: kib(status(pid).get("VmRSS", "")) for pid in tree(qcluster.pid)}
    peaks: dict[int, int] = {}
    names: dict[int, str] = {}
    stop = threading.Event()
    sampler = threading.Thread(target=sample, args=(qcluster.pid, peaks, names, stop), daemon=True)
    sampler.start()
    started = time.monotonic()
    workflow.deploy(site.users["developer"], ticket)
    wait_for(lambda: Ticket.objects.get(pk=ticket.pk).status in FINAL, timeout=900, interval=0.5)
    took = time.monotonic() - started
    stop.set()
    sampler.join()
    run = DeployRun.objects.get(ticket=ticket)
    assert run.status == DeployRun.Status.SUCCEEDED, run.error
    lines = run.log_lines.count()
    print()
    print(f"hook output                  {HOOK_MB} MB ({HOOK_MB * 10_000:,} lines of 100 bytes) on one target")
    marker = run.log_lines.filter(text__startswith="[log limit]").values_list("text", flat=True).first() or ""
    print(f"deploy took                  {took:.1f} s; console stored {lines:,} lines")
    print(f"cap marker                   {marker[:110]}")
    for pid, peak in sorted(peaks.items()):
        print(f"process {pid:>7} {names.get(pid, '?'):<14} RSS before {before.get(pid, 0) / 1024:6.1f} MB, peak {peak / 1024:6.1f} MB")
    worst = max(peaks.values()) / 1024
    print(f"largest worker process peak  {worst:.1f} MB (target under {TARGET_MB} MB)")
