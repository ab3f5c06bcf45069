"""The scenario behind bench/fanout.py (not part of the test suite: pytest
collects tests/ only). Prints figures; asserts only that every deploy worked."""

from __future__ import annotations

import cProfile
import io
import itertools
import json
import logging
import os
import pstats
import random
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from accounts.models import ApiToken
from projects.config_check import run_check
from projects.keys import team_key
from projects.models import Host
from releases import tasks, workflow
from releases.models import DeployRun, LogLine, Ticket
from tests import helpers
from tests.deploy_fixtures import _worker_env, wait_for
from tests.infra import environment
from tests.infra.hosts import TargetHost, _chown_tree, _make_dir, authorize_key, start_all

BENCH_ROOT = Path("/tmp/walle-bench-fanout")  # never the tests' state root
PROXY_PORT = 2222  # each host's sshd stays on :22; Walle and the baseline reach it through :2222
WEBROOT, LIBRARY = "/data/nginx/website", "/data/releases/walle"
BASE_WEBROOT, BASE_LIBRARY = "/data/nginx/base", "/data/releases/base"
SIZES = [int(n) for n in os.environ.get("BENCH_HOSTS", "1,5,20").split(",") if n]
HOG_SIZES = [int(n) for n in os.environ.get("BENCH_HOG_HOSTS", "20").split(",") if n]
LIVE_LOG_HOSTS = int(os.environ.get("BENCH_LIVE_LOG_HOSTS", "20"))
FILES = int(os.environ.get("BENCH_FILES", "2000"))
SIZE = float(os.environ.get("BENCH_SIZE_MB", "20")) * 1e6
CHANGED = float(os.environ.get("BENCH_CHANGED", "0.01"))
RATE, DELAY = os.environ.get("BENCH_RATE_MBIT", "200"), os.environ.get("BENCH_DELAY_MS", "2")
PROFILE = bool(os.environ.get("BENCH_PROFILE"))
ADDRESSES = [f"127.0.0.{101 + n}" for n in range(max([*SIZES, *HOG_SIZES, LIVE_LOG_HOSTS]))]
DEADLINE = 600  # seconds any one step may take
LIVE_HOOK = "for i in 1 2 3 4 5; do date +%s.%N; sleep 0.2; done"
_turns = itertools.count()


# -- the emulated link -------------------------------------------------------------


class Proxy:
    """bench/netproxy.py in its own process: one shared upload cap, byte counts."""

    def __init__(self, addresses: Sequence[str]) -> None:
        routes = [f"{a}:{PROXY_PORT}={a}:22" for a in addresses]
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("netproxy.py")), "--rate-mbit", RATE, "--delay-ms", DELAY,
             *routes], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout.readline().strip() == "ready"

    def command(self, text: str) -> None:
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def sent(self) -> int:
        self.command("stats")
        return json.loads(self.proc.stdout.readline())["up"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


# -- the repository ----------------------------------------------------------------


def _git(cwd: Path, *args: str) -> str:
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid"}
    return subprocess.run(["git", "-c", "safe.directory=*", *args], cwd=cwd, env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


def _text(rng: random.Random, vocabulary: list[str], size: int) -> str:
    words, length = [], 0
    while length < size:
        line = " ".join(rng.choices(vocabulary, k=12)) + "\n"
        words.append(line)
        length += len(line)
    return "".join(words)[:size]


def make_repository(git_server, name: str, work: Path) -> tuple[str, str]:
    """FILES files of SIZE bytes in all (source-like text), then a commit that
    rewrites CHANGED of them; pushed to the git server. Returns both SHAs."""
    rng = random.Random(9)
    vocabulary = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz_", k=rng.randint(2, 10))) for _ in range(5000)]
    per_file = int(SIZE / FILES)
    paths = [work / f"src/pkg{n // 100:02d}/module{n:04d}.py" for n in range(FILES)]
    work.mkdir()
    _git(work, "init", "-q", "--initial-branch=master")
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_text(rng, vocabulary, per_file))
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", "v1")
    first = _git(work, "rev-parse", "HEAD")
    for path in paths[:: max(1, round(1 / CHANGED))]:
        path.write_text(_text(rng, vocabulary, per_file))
    _git(work, "commit", "-q", "-a", "-m", "v2")
    second = _git(work, "rev-parse", "HEAD")
    git_server.create_repo(name)
    bare = git_server.repo_path(name)
    _git(work, "--git-dir", str(bare), "fetch", "-q", str(work), "+refs/heads/master:refs/heads/master")
    stat = bare.stat()
    _chown_tree(bare, stat.st_uid, stat.st_gid)
    return first, second


# -- the baseline ------------------------------------------------------------------


class Baseline:
    """The least work: one checkout, rsync -az --link-dest to all hosts at once, ln + mv."""

    def __init__(self, root: Path, key: str, known_hosts: list[str], repo_url: str) -> None:
        root.mkdir()
        self.key = root / "id"
        self.key.write_text(key if key.endswith("\n") else key + "\n")
        self.key.chmod(0o600)
        (root / "known_hosts").write_text("".join(line + "\n" for line in known_hosts))
        self.ssh = ["ssh", "-F", "/dev/null", "-i", str(self.key), "-o", "BatchMode=yes",
                    "-o", f"UserKnownHostsFile={root / 'known_hosts'}", "-o", "StrictHostKeyChecking=yes"]
        self.checkout = root / "checkout"
        self.repo_url = repo_url
        self.env = {"PATH": os.environ["PATH"], "HOME": str(root), "GIT_SSH_COMMAND": shlex.join(self.ssh)}

    def run(self, argv: list[str], cwd: Path | None = None) -> None:
        subprocess.run(argv, cwd=cwd, env=self.env, check=True, capture_output=True, timeout=DEADLINE)

    def deploy(self, hosts: Sequence[TargetHost], sha: str, name: str, link_dest: str = "") -> float:
        started = time.perf_counter()
        if self.checkout.exists():
            self.run(["git", "fetch", "-q", "origin"], cwd=self.checkout)
        else:
            self.run(["git", "clone", "-q", "--no-checkout", self.repo_url, str(self.checkout)])
        self.run(["git", "checkout", "-q", "--force", sha], cwd=self.checkout)
        remote_shell = shlex.join([*self.ssh, "-p", str(PROXY_PORT)])
        extra = [f"--link-dest={BASE_LIBRARY}/{link_dest}"] if link_dest else []

        def copy(host: TargetHost) -> None:
            self.run(["rsync", "-az", "--delete", "--exclude=.git", *extra, "-e", remote_shell,
                      f"{self.checkout}/", f"www@{host.address}:{BASE_LIBRARY}/{name}/"])

        parallel(copy, hosts)
        return self.switch(hosts, name, started)

    def switch(self, hosts: Sequence[TargetHost], name: str, started: float | None = None) -> float:
        started = time.perf_counter() if started is None else started
        script = f"ln -sfn {BASE_LIBRARY}/{name} /data/nginx/.base-tmp && mv -fT /data/nginx/.base-tmp {BASE_WEBROOT}"
        parallel(lambda h: self.run([*self.ssh, "-p", str(PROXY_PORT), f"www@{h.address}", script]), hosts)
        return time.perf_counter() - started


def parallel(step: Callable[[TargetHost], None], hosts: Sequence[TargetHost]) -> None:
    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        list(pool.map(step, hosts))


# -- Walle through a real ticket ---------------------------------------------------


class Walle:
    """Tickets submitted, approved and run by the worker task, as a user would."""

    def __init__(self, project, users: dict) -> None:
        self.project = project
        self.users = users
        self.number = 0

    def approved(self, ticket: Ticket) -> Ticket:
        if ticket.status == Ticket.Status.PENDING:
            workflow.approve(self.users["owner"], ticket, version=ticket.version)
        return ticket

    def run(self, ticket: Ticket, actor: str, profile: bool = False) -> tuple[float, DeployRun]:
        run = workflow.deploy(self.users[actor], ticket)
        profiler = cProfile.Profile() if profile else None
        started = time.perf_counter()
        if profiler:
            profiler.runcall(tasks.run_deploy, run.pk)
        else:
            tasks.run_deploy(run.pk)
        elapsed = time.perf_counter() - started
        run.refresh_from_db()
        assert run.status == DeployRun.Status.SUCCEEDED, run.error
        if profiler:
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
            print(out.getvalue())
        return elapsed, run

    def deploy(self, sha: str, profile: bool = False) -> tuple[float, Ticket, DeployRun]:
        self.number += 1
        ticket = self.approved(workflow.submit(
            self.users["developer"], self.project, title=f"bench {self.number}", ref="master", commit=sha))
        elapsed, run = self.run(ticket, "developer", profile)
        return elapsed, ticket, run

    def rollback(self, deployed: Ticket) -> float:
        ticket = self.approved(workflow.request_rollback(self.users["maintainer"], deployed))
        return self.run(ticket, "maintainer")[0]


# -- bytes read on the targets -----------------------------------------------------


class ReadMeter(threading.Thread):
    """Samples /proc/<pid>/io of the rsync processes inside the targets' namespaces
    (the receiving side) and keeps each one's largest rchar: every byte they read,
    files and pipe alike (read_bytes would show only what missed the page cache)."""

    def __init__(self, hosts: Sequence[TargetHost]) -> None:
        super().__init__(daemon=True)
        self.namespaces = {os.readlink(f"/proc/{h._init_pid}/ns/mnt"): h.name for h in hosts}
        self.seen: dict[int, tuple[str, int]] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for entry in os.scandir("/proc"):
                if entry.name.isdigit():
                    self.sample(int(entry.name))
            time.sleep(0.01)

    def sample(self, pid: int) -> None:
        try:
            with open(f"/proc/{pid}/comm") as handle:
                if handle.read().strip() != "rsync":
                    return
            host = self.namespaces.get(os.readlink(f"/proc/{pid}/ns/mnt"))
            if host is None:
                return
            with open(f"/proc/{pid}/io") as handle:
                rchar = int(next(line for line in handle if line.startswith("rchar:")).split()[1])
        except (OSError, StopIteration, ValueError):
            return
        self.seen[pid] = (host, max(rchar, self.seen.get(pid, ("", 0))[1]))

    def per_host(self) -> dict[str, int]:
        self.done.set()
        self.join(timeout=5)
        totals: dict[str, int] = {}
        for host, rchar in self.seen.values():
            totals[host] = totals.get(host, 0) + rchar
        return totals


# -- live log ----------------------------------------------------------------------


def start_gunicorn(root: Path, port: int) -> subprocess.Popen:
    env = _worker_env()
    env.update(WALLE_DATA_DIR=str(root / "web"), WALLE_WORKSPACE_ROOT=str(root / "web" / "workspaces"))
    log = open(root / "gunicorn.log", "w")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "walleproj.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", "2", "--worker-class", "gthread", "--threads", "4"],
        cwd=django_settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        umask=0o077,
    )


class LogFollower(threading.Thread):
    """An API client following a ticket's log as the page does (poll, then
    follow next_after); for each post_release line, the time from the
    timestamp the hook printed to the response that served it."""

    POLL = 0.1

    def __init__(self, base: str, token: str, ticket_id: int) -> None:
        super().__init__(daemon=True)
        self.url = f"{base}/api/tickets/{ticket_id}/log/"
        self.headers = {"Authorization": f"Bearer {token}", "Host": "127.0.0.1"}
        self.latencies: list[float] = []
        self.stop_at = time.monotonic() + DEADLINE

    def run(self) -> None:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        after = 0
        while time.monotonic() < self.stop_at:
            request = urllib.request.Request(f"{self.url}?after={after}", headers=self.headers)
            with opener.open(request, timeout=30) as response:
                page = json.loads(response.read())
            served = time.time()
            for line in page["lines"]:
                if line["stage"] == "post_release" and line["stream"] == "stdout":
                    self.latencies.append(served - float(line["text"]))
            after = page["next_after"]
            if page["status"] in (Ticket.Status.SUCCEEDED, Ticket.Status.FAILED) and not page["more"]:
                return
            if not page["more"]:
                time.sleep(self.POLL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- reporting ---------------------------------------------------------------------


def ratio(walle: float, base: float) -> str:
    return f"{walle / base:5.2f}x" if base else "  -  "


def row(label: str, base: float, walle: float, base_bytes: int | None = None, walle_bytes: int | None = None,
        note: str = "") -> None:
    text = f"  {label:<24} baseline {base:6.2f} s   Walle {walle:6.2f} s   {ratio(walle, base)}"
    if base_bytes is not None and walle_bytes is not None:
        text += f"   sent {base_bytes / 1e6:7.2f} MB vs {walle_bytes / 1e6:7.2f} MB  {ratio(walle_bytes, base_bytes)}"
    print(text + (f"   ({note})" if note else ""), flush=True)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def stage_times(run: DeployRun) -> str:
    """Seconds from the run's start to the last line of each stage (lines are stored in batches)."""
    start = run.started_at
    spans: dict[str, float] = {}
    for stage, at in LogLine.objects.filter(run=run).order_by("seq").values_list("stage", "created_at"):
        spans[stage] = (at - start).total_seconds()
    return ", ".join(f"{stage} {seconds:.2f}" for stage, seconds in spans.items())


# -- the scenario ------------------------------------------------------------------


@pytest.fixture
def fleet(walle_infra):
    """Target hosts on 127.0.0.101 and up (own state root), their proxy; stopped at the end."""
    environment.kill_leftovers(BENCH_ROOT)
    machines = [TargetHost(address, state_root=BENCH_ROOT) for address in ADDRESSES]
    start_all(machines)
    proxy = Proxy(ADDRESSES)
    try:
        yield machines, proxy
    finally:
        proxy.close()
        for machine in machines:
            machine.stop()
        shutil.rmtree(BENCH_ROOT, ignore_errors=True)  # the hosts' disks: a gigabyte of releases


def reset(hosts: Sequence[TargetHost]) -> None:
    for host in hosts:
        host.reset()
        www = host.root / "releases"
        _make_dir(www / "base", 0o755, www.stat().st_uid, www.stat().st_gid)


class Hog:
    """One busy process per CPU at normal priority: "other work" on the deploy host."""

    def __enter__(self) -> Hog:
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGKILL)
            proc.wait()


def measure(chosen, proxy: Proxy, baseline: Baseline, walle: Walle, sha: str, name: str, link_dest: str,
            *, baseline_first: bool, profile: bool = False) -> tuple[float, int, float, int, Ticket, DeployRun]:
    """One deploy each: (baseline s, baseline bytes, Walle s, Walle bytes, Walle's ticket and run)."""
    base = walle_result = None
    for turn in ("baseline", "walle") if baseline_first else ("walle", "baseline"):
        # Untimed: write back what earlier steps left dirty in the page
        # cache, so neither pays for the other's writes.
        os.sync()
        proxy.command("reset")
        if turn == "baseline":
            base = (baseline.deploy(chosen, sha, name, link_dest), proxy.sent())
        else:
            walle_result = walle.deploy(sha, profile=profile)
            walle_result = (walle_result[0], proxy.sent(), *walle_result[1:])
    assert base and walle_result
    return (*base, *walle_result)


def fan_out(size: int, hosts, proxy: Proxy, baseline: Baseline, walle: Walle, shas: tuple[str, str]) -> None:
    chosen = hosts[:size]
    walle.project.hosts.set(Host.objects.filter(address__in=[h.address for h in chosen]))
    v1, v2 = shas
    # Cold twice, on wiped targets, each side going first once: the first
    # deploy after the wipe is the noisiest figure; the mean of the two is shown.
    colds = []
    for baseline_first in (True, False):
        reset(chosen)
        colds.append(measure(chosen, proxy, baseline, walle, v1, f"cold-{size}", "", baseline_first=baseline_first))
    base, base_bytes, elapsed, walle_bytes = (statistics.mean(c[i] for c in colds) for i in range(4))
    row(f"cold ({size} hosts)", base, elapsed, base_bytes, walle_bytes,
        "mean of 2; " + ", ".join(f"{c[2] / c[0]:.2f}x" for c in colds) + " with the baseline, Walle first")
    # Who goes first alternates from one measurement to the next, so
    # neither always meets the disks and caches the other left behind.
    baseline_first = next(_turns) % 2 == 0
    base, base_bytes, elapsed, walle_bytes, ticket, run = measure(
        chosen, proxy, baseline, walle, v2, f"incremental-{size}", f"cold-{size}",
        baseline_first=baseline_first, profile=PROFILE and size == max(SIZES))
    row(f"incremental ({size} hosts)", base, elapsed, base_bytes, walle_bytes, "" if baseline_first else "Walle first")
    print(f"    Walle's stages (s from start to last line): {stage_times(run)}")
    figures = {"incremental": (ticket, run)}
    if not baseline_first:  # the other order than the incremental's
        base = baseline.switch(chosen, f"cold-{size}")
        row(f"rollback ({size} hosts)", base, walle.rollback(figures["incremental"][0]))
    else:
        back = walle.rollback(figures["incremental"][0])
        row(f"rollback ({size} hosts)", baseline.switch(chosen, f"cold-{size}"), back, note="Walle first")
    # Bytes read on the targets by an incremental copy (the current release is v1 again).
    meter = ReadMeter(chosen)
    meter.start()
    baseline.deploy(chosen, v2, f"again-{size}", f"cold-{size}")
    base_read = meter.per_host()
    meter = ReadMeter(chosen)
    meter.start()
    walle.deploy(v2)
    walle_read = meter.per_host()
    if base_read and walle_read:
        b, w = statistics.mean(base_read.values()), statistics.mean(walle_read.values())
        print(f"  {'read per target (incr.)':<24} baseline {b / 1e6:6.2f} MB   Walle {w / 1e6:6.2f} MB   "
              f"{ratio(w, b)}   (rsync rchar, mean of {len(walle_read)} hosts; the release is {SIZE / 1e6:.0f} MB)")


def live_log(size: int, hosts, walle: Walle, sha: str, root: Path) -> None:
    chosen = hosts[:size]
    walle.project.hosts.set(Host.objects.filter(address__in=[h.address for h in chosen]))
    walle.project.post_release = LIVE_HOOK
    walle.project.save()
    _, token = ApiToken.issue(walle.users["developer"], "bench")
    port = free_port()
    web = start_gunicorn(root, port)
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        wait_for(lambda: _answers(opener, f"http://127.0.0.1:{port}/healthz"), timeout=60)
        walle.number += 1
        ticket = walle.approved(workflow.submit(
            walle.users["developer"], walle.project, title="live log", ref="master", commit=sha))
        follower = LogFollower(f"http://127.0.0.1:{port}", token, ticket.pk)
        follower.start()
        walle.run(ticket, "developer")
        follower.join(timeout=60)
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(timeout=30)
        walle.project.post_release = ""
        walle.project.save()
    values = follower.latencies
    assert values, "no post_release line was served"
    print(f"  live log ({size} hosts): {len(values)} hook lines, hook print -> served by /log/: "
          f"p50 {percentile(values, 0.5) * 1000:.0f} ms, p95 {percentile(values, 0.95) * 1000:.0f} ms, "
          f"max {max(values) * 1000:.0f} ms (client polls every {LogFollower.POLL * 1000:.0f} ms)")


def _answers(opener, url: str) -> bool:
    try:
        with opener.open(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def test_fanout(fleet, git_server, world, transactional_db, settings, tmp_path):
    hosts, proxy = fleet
    for name in ("paramiko", "django-q"):  # their INFO lines would bury the figures
        logging.getLogger(name).setLevel(logging.WARNING)
    settings.WALLE_WORKSPACE_ROOT = tmp_path / "workspaces"
    key = team_key(world.team)
    authorize_key("www", key.public_key)
    authorize_key("git", key.public_key)
    shas = make_repository(git_server, "fanout", tmp_path / "work")
    records = [Host.objects.create(address=h.address, port=PROXY_PORT) for h in hosts]
    project = helpers.make_project(
        world.team, hosts=records, name="fanout", slug="fanout", repo_url=git_server.url("fanout"),
        webroot=WEBROOT, release_library=LIBRARY, max_parallel=len(hosts), keep_releases=20,
    )
    reset(hosts)
    report = run_check(world.users["maintainer"], project)  # pins every host key, through the proxy
    assert report.ok, [r for r in report.results if not r.ok]
    project.refresh_from_db()
    known = [f"[{h.address}]:{PROXY_PORT} {h.host_key}" for h in hosts] + [git_server.known_hosts_line]
    baseline = Baseline(tmp_path / "baseline", key.private_key(), known, git_server.url("fanout"))
    walle = Walle(project, world.users)
    print(f"\nrepository: {FILES} files, {SIZE / 1e6:.0f} MB; v2 changes {CHANGED:.0%} of the files; "
          f"uplink {RATE} Mbit/s, +{DELAY} ms per chunk; max_parallel = hosts")
    for size in SIZES:
        fan_out(size, hosts, proxy, baseline, walle, shas)
    for size in HOG_SIZES:
        print(f"with a CPU hog ({os.cpu_count()} busy processes):")
        with Hog():
            fan_out(size, hosts, proxy, baseline, walle, shas)
    if LIVE_LOG_HOSTS:
        live_log(LIVE_LOG_HOSTS, hosts, walle, shas[0], tmp_path)
