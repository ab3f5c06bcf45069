"""The load scenario behind bench/load.py (not part of the test suite: pytest
collects tests/ only). Prints figures; asserts only that every deploy worked."""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings as django_settings

from accounts.models import ApiToken
from releases import workflow
from releases.models import DeployRun, Ticket
from tests.deploy_fixtures import _worker_env, wait_for
from tests.scale_out.test_two_workers import PROJECTS, ended, fleet, workers  # noqa: F401 - fixtures

CLIENTS = int(os.environ.get("BENCH_CLIENTS", "50"))
POLL = float(os.environ.get("BENCH_POLL", "0.25"))
DEADLINE = 300.0  # seconds: the whole scenario stops by then whatever happens
FINAL = {Ticket.Status.SUCCEEDED, Ticket.Status.FAILED}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(root: Path, port: int) -> subprocess.Popen:
    env = _worker_env()
    env.update(WALLE_DATA_DIR=str(root / "web"), WALLE_WORKSPACE_ROOT=str(root / "web" / "workspaces"))
    log = open(root / "gunicorn.log", "w")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "walleproj.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", "2", "--worker-class", "gthread", "--threads", "8", "--timeout", "120"],
        cwd=django_settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        umask=0o077,
    )


class Poller(threading.Thread):
    """One API client following tickets' logs, as a script or the page would:
    its own ticket to the end, then the next one, until every deploy ended."""

    def __init__(self, base: str, token: str, ticket_ids: list[int], done: threading.Event, stop_at: float) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.ticket_ids = ticket_ids
        self.headers = {"Authorization": f"Bearer {token}", "Host": "127.0.0.1"}
        self.done = done
        self.stop_at = stop_at
        self.latencies: list[float] = []
        self.small: list[float] = []  # pages of a live tail (under 100 lines)
        self.errors = 0
        self.lines = 0

    def run(self) -> None:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        current, after = 0, 0
        while not self.done.is_set() and time.monotonic() < self.stop_at:
            url = f"{self.base}/api/tickets/{self.ticket_ids[current]}/log/?after={after}"
            started = time.perf_counter()
            try:
                with opener.open(urllib.request.Request(url, headers=self.headers), timeout=30) as response:
                    page = json.loads(response.read())
            except (urllib.error.URLError, OSError, ValueError):
                self.errors += 1
                time.sleep(POLL)
                continue
            self.latencies.append(time.perf_counter() - started)
            if len(page["lines"]) < 100:
                self.small.append(self.latencies[-1])
            self.lines += len(page["lines"])
            after = page["next_after"]
            if page["status"] in FINAL and not page["more"]:
                current, after = (current + 1) % len(self.ticket_ids), 0
            elif not page["more"]:
                time.sleep(POLL)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def test_load(fleet, workers, tmp_path):  # noqa: F811 - the fixtures imported above
    for project in fleet.projects:
        project.pre_release = "seq 1 200"  # some console output per host to follow
        project.save()
    commits = [fleet.push(i, "v1") if i else fleet.git_server.rev_parse(fleet.repos[0], "master")
               for i in range(PROJECTS)]
    tickets = [fleet.approved_ticket(i, commits[i]) for i in range(PROJECTS)]
    _, raw_token = ApiToken.issue(fleet.users["developer"], "bench")
    port = free_port()
    web = start_gunicorn(tmp_path, port)
    base = f"http://127.0.0.1:{port}"
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        wait_for(lambda: _answers(opener, f"{base}/healthz"), timeout=30)
        for _ in range(8):  # warm both gunicorn workers (imports, connections) before timing
            _answers(opener, f"{base}/api/tickets/{tickets[0].pk}/log/", {"Authorization": f"Bearer {raw_token}"})
        stop_at = time.monotonic() + DEADLINE
        done = threading.Event()
        ids = [t.pk for t in tickets]
        clients = [Poller(base, raw_token, ids[n % PROJECTS:] + ids[:n % PROJECTS], done, stop_at)
                   for n in range(CLIENTS)]
        started = time.monotonic()
        for ticket in tickets:
            workflow.deploy(fleet.users["developer"], ticket)
        for client in clients:
            client.start()
        wait_for(lambda: ended(*tickets), timeout=DEADLINE, interval=0.5)
        deploys_done = time.monotonic() - started
        done.set()
        for client in clients:
            client.join(timeout=max(1.0, stop_at - time.monotonic()))
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(timeout=30)
    runs = list(DeployRun.objects.filter(ticket__in=tickets))
    assert all(r.status == DeployRun.Status.SUCCEEDED for r in runs), [r.error for r in runs if r.error]
    latencies = [x for c in clients for x in c.latencies]
    durations = [r.duration for r in runs]
    print()
    print(f"projects deploying at once      {PROJECTS} (3 real sshd targets each, 2 qcluster workers x 2 processes)")
    print(f"API clients polling logs        {CLIENTS} (pause {POLL}s between polls)")
    print(f"wall time until all deploys end {deploys_done:.1f} s")
    print(f"one run, claim to end           median {statistics.median(durations):.1f} s, max {max(durations):.1f} s")
    if not latencies:
        return
    print(f"log requests                    {len(latencies)} ok, {sum(c.errors for c in clients)} failed, "
          f"{len(latencies) / deploys_done:.0f}/s")
    print(f"log request latency             p50 {percentile(latencies, 0.5) * 1000:.0f} ms, "
          f"p95 {percentile(latencies, 0.95) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms")
    small = [x for c in clients for x in c.small]
    if small:
        print(f"  of which tail pages (<100 ln) {len(small)}: p50 {percentile(small, 0.5) * 1000:.0f} ms, "
              f"p95 {percentile(small, 0.95) * 1000:.0f} ms")
    print(f"log lines delivered             {sum(c.lines for c in clients)}")


def _answers(opener, url: str, headers: dict | None = None) -> bool:
    try:
        with opener.open(urllib.request.Request(url, headers=headers or {}), timeout=5) as response:
            return response.status == 200
    except OSError:
        return False
