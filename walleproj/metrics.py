"""Prometheus /metrics, computed from the database at scrape time.

Why a collector that queries rather than counters incremented in the worker:
runs happen in any number of worker processes on any number of machines, and
the database already holds every run with its outcome and timings. Any web
process can answer a scrape with the same numbers, nothing is lost when a
worker restarts, and the worker code needs no change. Counters are "rows so
far", so they only go down when rows are deleted (a ticket deleted by an admin;
log retention for the per-stage histogram), which Prometheus reads as a reset.

Every family is one aggregate query (GROUP BY), never a query per row, so a
scrape costs the same with ten runs or a million.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, Min, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_q.brokers import get_broker
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from notifications.models import Delivery
from releases.models import DeployRun, LogLine, ProjectLock, TicketAction, TicketEvent
from walleproj import health

logger = logging.getLogger(__name__)

FINISHED = [DeployRun.Status.SUCCEEDED, DeployRun.Status.FAILED, DeployRun.Status.CANCELLED]
# Seconds. A deploy is a build plus an rsync: seconds to an hour (the timeout).
RUN_BUCKETS = (5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)
STAGE_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


def _seconds(value) -> float:
    """A summed duration: a timedelta where the database has an interval type
    (PostgreSQL), microseconds where it has not (SQLite)."""
    if value is None:
        return 0.0
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value) / 1_000_000


def _cumulative(row: dict, count_key: str, buckets: Sequence[float]) -> list[tuple[str, float]]:
    pairs = [(repr(b), float(row[f"le_{i}"])) for i, b in enumerate(buckets)]
    return pairs + [("+Inf", float(row[count_key]))]


def deploys_total() -> Metric:
    family = CounterMetricFamily(
        "walle_deploys", "Runs that ended, by project, environment, kind (deploy/rollback) and outcome.",
        labels=["project", "environment", "kind", "outcome"],
    )
    rows = (
        DeployRun.objects.filter(status__in=FINISHED)
        .values_list("ticket__project__slug", "ticket__project__environment__slug", "ticket__kind", "status")
        .annotate(n=Count("pk")).order_by()
    )
    for project, environment, kind, outcome, n in rows:
        family.add_metric([project, environment, kind, outcome], n)
    return family


def deploy_duration() -> Metric:
    family = HistogramMetricFamily(
        "walle_deploy_duration_seconds", "Run time from claim (started_at) to end (finished_at).",
        labels=["project", "environment", "outcome"],
    )
    span = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    buckets = {f"le_{i}": Count("pk", filter=Q(span__lte=timedelta(seconds=b))) for i, b in enumerate(RUN_BUCKETS)}
    rows = (
        DeployRun.objects.filter(status__in=FINISHED, started_at__isnull=False, finished_at__isnull=False)
        .alias(span=span)
        .values("ticket__project__slug", "ticket__project__environment__slug", "status")
        .annotate(n=Count("pk"), total=Sum("span"), **buckets).order_by()
    )
    for row in rows:
        labels = [row["ticket__project__slug"], row["ticket__project__environment__slug"], row["status"]]
        family.add_metric(labels, _cumulative(row, "n", RUN_BUCKETS), _seconds(row["total"]))
    return family


def stage_duration() -> Metric:
    """Per stage of finished runs: the span from its first to its last console
    line. Lines are stored in batches every 0.2 s and a host's stages overlap
    other hosts' (they run in parallel), so this is the stage's wall time across
    all hosts, to about 0.2 s."""
    family = HistogramMetricFamily(
        "walle_deploy_stage_duration_seconds",
        "Wall time of each stage of finished runs (first to last console line of the stage, all hosts).",
        labels=["stage"],
    )
    spans = (
        LogLine.objects.filter(run__status__in=FINISHED)
        .values("run_id", "stage")
        .annotate(span=ExpressionWrapper(Max("created_at") - Min("created_at"), output_field=DurationField()))
        .values("stage", "span").order_by()
    )
    inner, params = spans.query.sql_with_params()
    # A histogram of per-(run, stage) spans needs an aggregate over an
    # aggregate, which the ORM cannot express: wrap its own SQL once.
    limit = DurationField()
    cases = ", ".join(f"SUM(CASE WHEN s.span <= %s THEN 1 ELSE 0 END) AS le_{i}" for i in range(len(STAGE_BUCKETS)))
    bucket_params = [limit.get_db_prep_value(timedelta(seconds=b), connection) for b in STAGE_BUCKETS]
    sql = f"SELECT s.stage, COUNT(*) AS n, SUM(s.span) AS total, {cases} FROM ({inner}) s GROUP BY s.stage"
    with connection.cursor() as cursor:
        cursor.execute(sql, [*bucket_params, *params])
        columns = [c[0].lower() for c in cursor.description]
        rows = [dict(zip(columns, values, strict=True)) for values in cursor.fetchall()]
    for row in rows:
        family.add_metric([row["stage"]], _cumulative(row, "n", STAGE_BUCKETS), _seconds(row["total"]))
    return family


def runs_active() -> Metric:
    family = GaugeMetricFamily("walle_runs", "Runs waiting for a worker (queued) or running now.", labels=["status"])
    counts = dict(
        DeployRun.objects.filter(status__in=DeployRun.ACTIVE_STATUSES)
        .values_list("status").annotate(n=Count("pk")).order_by()
    )
    for status in DeployRun.ACTIVE_STATUSES:
        family.add_metric([status], counts.get(status, 0))
    return family


def lock_takeovers() -> Metric:
    family = CounterMetricFamily(
        "walle_lock_takeovers", "Project locks taken over from a run whose worker stopped renewing its lease.",
        labels=["project"],
    )
    rows = (
        TicketEvent.objects.filter(action=TicketAction.LOCK_TAKEN_OVER)
        .values_list("ticket__project__slug").annotate(n=Count("pk")).order_by()
    )
    for project, n in rows:
        # workflow._take_over writes one event on the dead run's ticket and one
        # on the taking ticket, in one transaction and always of one project.
        family.add_metric([project], n // 2)
    return family


def lock_heartbeats() -> Metric:
    family = GaugeMetricFamily(
        "walle_project_lock_heartbeat_age_seconds",
        "Seconds since the run holding each project's lock last renewed it (taken over past its lease).",
        labels=["project"],
    )
    now = timezone.now()
    for project, beat in ProjectLock.objects.values_list("project__slug", "heartbeat_at"):
        family.add_metric([project], max(0.0, (now - beat).total_seconds()))
    return family


def notification_failures() -> Metric:
    family = CounterMetricFamily(
        "walle_notification_failures",
        "Notifications that failed after their last attempt, by channel kind and event (test messages included).",
        labels=["kind", "event"],
    )
    rows = (
        Delivery.objects.filter(status=Delivery.Status.FAILED)
        .values_list("kind", "event").annotate(n=Count("pk")).order_by()
    )
    for kind, event, n in rows:
        family.add_metric([kind, event], n)
    return family


def broker_and_workers() -> Iterator[Metric]:
    up = GaugeMetricFamily("walle_broker_up", "1 if the task broker answered this scrape.")
    queue = GaugeMetricFamily("walle_broker_queue_size", "Tasks waiting in the broker for a worker.")
    clusters = GaugeMetricFamily("walle_worker_clusters", "django-q2 clusters (qcluster processes) alive now.")
    beat = GaugeMetricFamily(
        "walle_worker_heartbeat_timestamp_seconds", "When each live cluster last reported (Unix time).",
        labels=["cluster", "host"],
    )
    workers = GaugeMetricFamily(
        "walle_worker_processes", "Worker processes of each live cluster.", labels=["cluster", "host"]
    )
    try:
        broker = get_broker()
        size = broker.queue_size()
        live = health.live_clusters()
    except Exception:  # the database families still answer when the broker does not
        logger.warning("metrics: broker unreachable", exc_info=True)
        up.add_metric([], 0)
        yield up
        return
    up.add_metric([], 1)
    queue.add_metric([], size)
    clusters.add_metric([], len(live))
    for stat in live:
        labels = [str(stat.cluster_id), str(stat.host)]
        beat.add_metric(labels, stat.timestamp.timestamp())
        workers.add_metric(labels, len(stat.workers))
    yield from (up, queue, clusters, beat, workers)


class WalleCollector:
    """Prometheus collector over Walle's database and broker."""

    def collect(self) -> Iterable[Metric]:
        yield deploys_total()
        yield deploy_duration()
        yield stage_duration()
        yield runs_active()
        yield lock_takeovers()
        yield lock_heartbeats()
        yield notification_failures()
        yield from broker_and_workers()


def render() -> bytes:
    # A registry per scrape: nothing global to register twice, and no
    # process-local metrics that would differ between web processes.
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WalleCollector())
    return generate_latest(registry)


# --- Who may scrape -------------------------------------------------------------

def client_address(request: HttpRequest) -> str:
    """REMOTE_ADDR, or behind WALLE_PROXY_COUNT proxies the address the outermost
    proxy saw (the entry it appended to X-Forwarded-For); "" when a proxied
    request lacks it. A client can prepend to the header, never append."""
    count = settings.WALLE_PROXY_COUNT
    if count <= 0:
        return request.META.get("REMOTE_ADDR", "")
    hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    return hops[-count] if len(hops) >= count else ""


def address_allowed(address: str, allow: Sequence[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for entry in allow:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:  # a typo in WALLE_METRICS_ALLOW refuses, never crashes the scrape
            logger.warning("WALLE_METRICS_ALLOW: %r is not an address or network", entry)
    return False


def token_ok(request: HttpRequest) -> bool:
    expected = settings.WALLE_METRICS_TOKEN
    if not expected:
        return False
    scheme, _, given = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected.encode())


def may_scrape(request: HttpRequest) -> bool:
    if token_ok(request):
        return True
    allow = settings.WALLE_METRICS_ALLOW
    return bool(allow) and address_allowed(client_address(request), allow)


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not may_scrape(request):
        response = HttpResponse("metrics: bearer token or allowed address required\n", status=403,
                                content_type="text/plain")
        if settings.WALLE_METRICS_TOKEN:
            response.status_code = 401
            response["WWW-Authenticate"] = 'Bearer realm="walle-metrics"'
        return response
    # Text format 0.0.4: every Prometheus version reads it, and all of Walle's
    # metric names are plain ones that need nothing newer.
    return HttpResponse(render(), content_type=CONTENT_TYPE_PLAIN_0_0_4)
