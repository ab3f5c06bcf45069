#!/usr/bin/env python3
"""Web and API benchmark: median and p95 latency of the pages and API reads on
a large database (100,000 tickets, 1,000 hosts, 200 projects, 2,000,000 log
lines), served by a real gunicorn, on SQLite and on PostgreSQL.

Usage:
    .venv/bin/python bench/web.py [--db sqlite|postgres|both] [--rounds 30]
    .venv/bin/python bench/web.py --db sqlite --profile      # cProfile, in-process, no gunicorn

Each database is its own: a SQLite file in a temporary data dir, or the
PostgreSQL database ``walle_bench_web`` (127.0.0.1:5432, user postgres, trust
auth), created and dropped here; never the tests' database. Settings come from
the environment as in production (DATABASE_URL, WALLE_DATA_DIR). Prints
figures; the target (p95 under 150 ms) is printed beside them, not asserted.
Figures: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_SERVER = "postgres://postgres@127.0.0.1:5432"
PG_NAME = "walle_bench_web"
TARGET_MS = 150.0

N_PROJECTS, PROJECTS_PER_TEAM, HOSTS_PER_PROJECT = 200, 5, 5
N_TICKETS, N_LINES, BIG_LOG = 100_000, 2_000_000, 50_000
MAINTAINED_TEAMS = 20  # the Maintainer's teams: 100 of the 200 projects
KEPT_RELEASES = 10
WORDS = ["login", "search", "billing", "cache", "api", "assets", "mail", "reports", "auth", "ui"]


# --- the outer process: one child per database -------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=30, help="timed requests per endpoint and user")
    parser.add_argument("--profile", action="store_true", help="profile each endpoint in-process instead")
    parser.add_argument("--inner", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        return inner(args)
    failed = 0
    for db in ("sqlite", "postgres") if args.db == "both" else (args.db,):
        with tempfile.TemporaryDirectory(prefix="walle-bench-web-") as tmp:
            env = dict(os.environ, WALLE_DATA_DIR=tmp, WALLE_WORKSPACE_ROOT=str(Path(tmp) / "workspaces"),
                       WALLE_LOG_LEVEL="WARNING")
            if db == "postgres":
                _psql(f"DROP DATABASE IF EXISTS {PG_NAME}")
                _psql(f"CREATE DATABASE {PG_NAME}")
                env["DATABASE_URL"] = f"{PG_SERVER}/{PG_NAME}"
            else:
                env["DATABASE_URL"] = f"sqlite:///{tmp}/bench.sqlite3"
            try:
                command = [sys.executable, __file__, "--inner", db, "--rounds", str(args.rounds)]
                command += ["--profile"] if args.profile else []
                failed |= subprocess.run(command, cwd=ROOT, env=env, check=False).returncode
            finally:
                if db == "postgres":
                    _psql(f"DROP DATABASE IF EXISTS {PG_NAME}")
    return failed


def _psql(sql: str) -> None:
    subprocess.run(["psql", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c", sql], check=True)


# --- the inner process: seed, serve, measure ------------------------------------------

@dataclass
class Seeded:
    admin: object
    maintainer: object
    big_ticket: int


def inner(args) -> int:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "walleproj.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    started = time.monotonic()
    seeded = seed()
    print(f"\n== {args.inner}: seeded in {time.monotonic() - started:.0f} s "
          f"({N_TICKETS:,} tickets, {N_PROJECTS} projects, {N_PROJECTS * HOSTS_PER_PROJECT} hosts, "
          f"{N_LINES:,} log lines; the big ticket's log has {BIG_LOG:,})")
    endpoints = _endpoints(seeded.big_ticket)
    users = {"maintainer of 100 projects": seeded.maintainer, "superuser": seeded.admin}
    if args.profile:
        return profile(endpoints, users)
    return measure(args.inner, endpoints, users, args.rounds)


def _endpoints(big: int) -> list[tuple[str, str, bool]]:
    """(name, path, is_api): the API is called with a token, pages with a session."""
    return [
        ("dashboard", "/", False),
        ("ticket list", "/tickets/", False),
        ("ticket list, filtered", "/tickets/?status=failed&q=login", False),
        ("ticket page, 50,000-line log", f"/tickets/{big}/", False),
        ("page's log poll (tail)", f"/tickets/{big}/log.json?after={BIG_LOG - 20}", False),
        ("API ticket list", "/api/tickets/", True),
        ("API ticket list, filtered", "/api/tickets/?status=failed&q=login", True),
        ("API log, first page", f"/api/tickets/{big}/log/?after=0", True),
        ("API log, deep page", f"/api/tickets/{big}/log/?after={BIG_LOG - 10_000}", True),
    ]


def _credentials(user) -> tuple[dict, dict]:
    from django.test import Client

    from accounts.models import ApiToken

    client = Client()
    client.force_login(user)
    _, raw = ApiToken.issue(user, "bench")
    page = {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}
    return page, {"Authorization": f"Bearer {raw}"}


def measure(db: str, endpoints, users: dict, rounds: int) -> int:
    port = _free_port()
    log = open(Path(os.environ["WALLE_DATA_DIR"]) / "gunicorn.log", "w")  # noqa: SIM115 - as long as the server
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "walleproj.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", "2", "--worker-class", "gthread", "--threads", "8", "--timeout", "120"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    base = f"http://127.0.0.1:{port}"
    worst = 0.0
    loads = os.getloadavg()  # the figures mean little on a busy machine: say how busy it was
    try:
        _wait_until_up(opener, f"{base}/healthz")
        print(f"{'endpoint':32} {'user':28} {'median':>8} {'p95':>8}   target p95 < {TARGET_MS:.0f} ms")
        for who, user in users.items():
            page, api = _credentials(user)
            for name, path, is_api in endpoints:
                headers = api if is_api else page
                for _ in range(4):  # both gunicorn workers warm (imports, connections, caches)
                    _get(opener, base + path, headers)
                times = [_get(opener, base + path, headers) for _ in range(rounds)]
                median, p95 = statistics.median(times), percentile(times, 0.95)
                worst = max(worst, p95)
                verdict = "ok" if p95 < TARGET_MS else "OVER"
                print(f"{name:32} {who:28} {median:6.1f}ms {p95:6.1f}ms   {verdict}")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
    print(f"{db}: worst p95 {worst:.1f} ms (target {TARGET_MS:.0f} ms); "
          f"load average before {loads[0]:.1f}, after {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 0


def _get(opener, url: str, headers: dict) -> float:
    started = time.perf_counter()
    with opener.open(urllib.request.Request(url, headers={**headers, "Host": "127.0.0.1"}), timeout=60) as response:
        body = response.read()
        if response.status != 200 or not body:
            raise RuntimeError(f"{url}: {response.status}")
    return (time.perf_counter() - started) * 1000


def _wait_until_up(opener, url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with opener.open(url, timeout=5):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    raise RuntimeError("gunicorn did not answer within 60 s")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def profile(endpoints, users: dict) -> int:
    """Where the time of each endpoint goes, in this process (Django's test
    client, no network): its queries and the top functions by cumulative time."""
    import cProfile
    import pstats

    from django.db import connection
    from django.test import Client

    from accounts.models import ApiToken

    for who, user in users.items():
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(user)
        _, raw = ApiToken.issue(user, "bench-profile")
        for name, path, is_api in endpoints:
            extra = {"HTTP_AUTHORIZATION": f"Bearer {raw}"} if is_api else {}
            if client.get(path, **extra).status_code != 200:
                raise RuntimeError(f"{path} did not answer 200")
            queries: list[tuple[float, str]] = []
            with connection.execute_wrapper(_timed(queries)):
                started = time.perf_counter()
                client.get(path, **extra)
                took = (time.perf_counter() - started) * 1000
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(3):
                client.get(path, **extra)
            profiler.disable()
            print(f"\n--- {name} as {who}: {took:.1f} ms, {len(queries)} queries; the slowest:")
            for spent, sql in sorted(queries, reverse=True)[:3]:
                print(f"    {spent:7.1f} ms  {sql[:400]}")
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(r"walle|releases|accounts|projects|rest_framework/serializers|template/(base|defaulttags)", 25)
    return 0


def _timed(into: list):
    def wrapper(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            into.append(((time.perf_counter() - started) * 1000, sql))
    return wrapper


# --- seeding: bulk inserts, ids given, so the rows are known without reading them back --

def seed() -> Seeded:
    from django.contrib.auth import get_user_model

    from accounts.models import Membership, Role, Team
    from projects.environments import ensure_defaults
    from projects.models import Environment, Host, Project

    ensure_defaults()
    User = get_user_model()
    admin = User.objects.create_superuser("bench-admin", "admin@example.com", "x")
    maintainer = User.objects.create_user("bench-maintainer", "m@example.com", "x")
    teams = Team.objects.bulk_create(Team(name=f"team-{n}") for n in range(N_PROJECTS // PROJECTS_PER_TEAM))
    developers = User.objects.bulk_create(
        User(username=f"dev{n}", email=f"dev{n}@example.com", password="!") for n in range(2 * len(teams))
    )
    Membership.objects.bulk_create(
        [Membership(user=d, team=teams[n // 2], role=Role.DEVELOPER) for n, d in enumerate(developers)]
        + [Membership(user=maintainer, team=t, role=Role.MAINTAINER) for t in teams[:MAINTAINED_TEAMS]]
    )
    environments = list(Environment.objects.order_by("order"))
    hosts = Host.objects.bulk_create(
        Host(address=f"10.{n // 250}.{n % 250}.1") for n in range(N_PROJECTS * HOSTS_PER_PROJECT)
    )
    projects = Project.objects.bulk_create(
        Project(team=teams[p // PROJECTS_PER_TEAM], environment=environments[p % len(environments)],
                name=f"app-{p}", slug=f"app-{p}", repo_url=f"ssh://git@127.0.0.10/srv/git/app-{p}.git",
                webroot=f"/data/nginx/app-{p}")
        for p in range(N_PROJECTS)
    )
    through = Project.hosts.through
    through.objects.bulk_create(
        through(project=project, host=hosts[p * HOSTS_PER_PROJECT + h])
        for p, project in enumerate(projects) for h in range(HOSTS_PER_PROJECT)
    )
    big = _seed_tickets(projects, hosts, developers)
    return Seeded(admin, maintainer, big)


def _project_of(i: int) -> int:
    return (i * 119) % N_PROJECTS  # 119 is prime to 200: neighbours are in different projects


def _status_of(i: int) -> str:
    from releases.models import Ticket

    S = Ticket.Status
    if i > N_TICKETS - 10:
        return S.DEPLOYING  # ten deploys running, in ten projects
    return {0: S.PENDING, 1: S.APPROVED, 2: S.REJECTED, 3: S.CANCELLED, 4: S.CANCELLED,
            5: S.FAILED, 6: S.FAILED, 7: S.FAILED}.get(i % 100, S.SUCCEEDED)


def _seed_tickets(projects, hosts, developers) -> int:
    from django.db import connection
    from django.db.models import Model

    from releases.models import DeployRun, LogLine, Release, RunHost, Ticket, TicketEvent

    S = Ticket.Status
    adapt = connection.ops.adapt_datetimefield_value
    start = datetime(2026, 1, 1, tzinfo=UTC)
    tickets, ticket_hosts, events, runs, run_hosts = [], [], [], [], []
    run_of: dict[int, int] = {}
    for i in range(1, N_TICKETS + 1):
        p = _project_of(i)
        project, author = projects[p], developers[2 * (p // PROJECTS_PER_TEAM) + i % 2]
        created = start + timedelta(seconds=300 * i)
        status = _status_of(i)
        tickets.append((i, project.pk, "deploy", f"release {i}: {WORDS[i % len(WORDS)]}", "", author.pk, status,
                        "branch", "master", f"{i:040x}", None, "", "", "", 1, adapt(created), adapt(created)))
        for h in range(HOSTS_PER_PROJECT):
            ticket_hosts.append((i, hosts[p * HOSTS_PER_PROJECT + h].pk))
        events.append((len(events) + 1, i, author.pk, "submit", "", S.PENDING, "", adapt(created)))
        if status in (S.SUCCEEDED, S.FAILED, S.DEPLOYING):
            run_id = len(runs) + 1
            run_of[i] = run_id
            active = status == S.DEPLOYING
            run_status = {S.SUCCEEDED: "succeeded", S.FAILED: "failed"}.get(status, "running")
            runs.append((run_id, i, 1, run_status, author.pk, f"r{i}", f"{i:040x}", "transfer" if active else "finish",
                         "", "bench", "", adapt(created), adapt(created), None if active else adapt(created + timedelta(seconds=30))))
            events.append((len(events) + 1, i, author.pk, "deploy", S.APPROVED, S.QUEUED, "", adapt(created)))
            if not active:
                host_status = "done" if status == S.SUCCEEDED else "cleaned"
                for h in range(HOSTS_PER_PROJECT):
                    run_hosts.append((len(run_hosts) + 1, run_id, hosts[p * HOSTS_PER_PROJECT + h].pk, host_status,
                                      f"r{i}", "", "", 1.5))
    # The ticket with the long log: the newest finished one the Maintainer sees.
    big = next(i for i in range(N_TICKETS, 0, -1)
               if _status_of(i) == S.SUCCEEDED and _project_of(i) // PROJECTS_PER_TEAM < MAINTAINED_TEAMS)
    _insert(Ticket, ["id", "project_id", "kind", "title", "description", "author_id", "status", "ref_kind", "ref",
                     "commit", "rollback_of_id", "rollback_release", "rollout_strategy", "reject_reason", "version", "created_at",
                     "updated_at"], tickets)
    _insert(Ticket.hosts.through, ["ticket_id", "host_id"], ticket_hosts)
    _insert(TicketEvent, ["id", "ticket_id", "actor_id", "action", "from_status", "to_status", "note", "created_at"],
            events)
    _insert(DeployRun, ["id", "ticket_id", "number", "status", "triggered_by_id", "release_name", "commit", "stage",
                        "error", "worker", "failed_batch", "created_at", "started_at", "finished_at"], runs)
    _insert(RunHost, ["id", "run_id", "host_id", "status", "release", "previous_release", "error", "duration"],
            run_hosts)
    _insert(LogLine, ["run_id", "seq", "created_at", "host", "stage", "stream", "text"],
            _log_lines(run_of, big, adapt(start)))
    _insert(Release, ["id", "project_id", "host_id", "name", "commit", "ticket_id", "run_id", "is_live",
                      "created_at", "switched_at", "removed_at"], _releases(projects, hosts, run_of, adapt(start)))
    models: list[type[Model]] = [Ticket, TicketEvent, DeployRun, RunHost, LogLine, Release]
    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_sql(_no_style(), models):
            cursor.execute(sql)
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE")
    return big


def _log_lines(run_of: dict[int, int], big: int, when):
    """2,000,000 lines: 50,000 in the big ticket's run, the rest spread evenly."""
    others = [run for ticket, run in run_of.items() if ticket != big]
    per_run, extra = divmod(N_LINES - BIG_LOG, len(others))
    stages = ["pre_deploy", "post_deploy", "transfer", "pre_release", "post_release"]
    for n, run in enumerate([run_of[big], *others]):
        count = BIG_LOG if n == 0 else per_run + (1 if n <= extra else 0)
        for seq in range(1, count + 1):
            stage = stages[seq * len(stages) // (count + 1)]
            yield (run, seq, when, f"10.0.{seq % 5}.1" if stage.endswith("release") else "", stage, "stdout",
                   f"step {seq}: building module_{seq % 97}.py, {seq * 37 % 1000} files ok")


def _releases(projects, hosts, run_of: dict[int, int], when):
    """Each project's newest kept releases on each of its hosts; the newest is live."""
    from releases.models import Ticket

    succeeded: dict[int, list[int]] = {}
    for i in range(N_TICKETS, 0, -1):
        p = _project_of(i)
        if _status_of(i) == Ticket.Status.SUCCEEDED and len(succeeded.setdefault(p, [])) < KEPT_RELEASES:
            succeeded[p].append(i)
    rows = []
    for p, ticket_ids in succeeded.items():
        for rank, i in enumerate(ticket_ids):
            for h in range(HOSTS_PER_PROJECT):
                rows.append((len(rows) + 1, projects[p].pk, hosts[p * HOSTS_PER_PROJECT + h].pk, f"r{i}",
                             f"{i:040x}", i, run_of[i], rank == 0, when, when, None))
    return rows


def _no_style():
    from django.core.management.color import no_style

    return no_style()


def _insert(model, columns: list[str], rows) -> None:
    """Bulk insert plain tuples: COPY on PostgreSQL, executemany on SQLite."""
    from django.db import connection, transaction

    table = model._meta.db_table
    quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
    with transaction.atomic(), connection.cursor() as cursor:
        raw = cursor.cursor
        if connection.vendor == "postgresql":
            with raw.copy(f"COPY {table} ({quoted}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" for _ in columns)
            raw.executemany(f"INSERT INTO {table} ({quoted}) VALUES ({marks})", rows)


if __name__ == "__main__":
    sys.exit(main())
