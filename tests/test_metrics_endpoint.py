"""/metrics: Prometheus text computed from the database at scrape time, only
for a bearer token or an allowed address, in a bounded number of queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from releases import workflow
from releases.lease import ProjectLease
from releases.models import DeployRun, LogLine, ProjectLock, Ticket
from tests.deploy_fixtures import wait_for
from walleproj import health

from . import helpers

TOKEN = "metrics-token-for-tests-0123456789"
AUTH = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
S = Ticket.Status
R = DeployRun.Status


@pytest.fixture
def token(settings):
    settings.WALLE_METRICS_TOKEN = TOKEN
    settings.WALLE_METRICS_ALLOW = []


def scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", **AUTH)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def finished_run(project, author, outcome: str, seconds: float, number: int = 1, kind: str = "deploy") -> DeployRun:
    status = S.SUCCEEDED if outcome == R.SUCCEEDED else S.FAILED
    ticket = helpers.make_ticket(project, author, status, kind=kind)
    end = timezone.now() - timedelta(minutes=5)
    return DeployRun.objects.create(
        ticket=ticket, number=number, status=outcome, started_at=end - timedelta(seconds=seconds), finished_at=end,
    )


def log_stage(run: DeployRun, stage: str, seconds: float, first_seq: int) -> None:
    start = run.started_at
    for i, offset in enumerate((0.0, seconds)):
        line = LogLine.objects.create(run=run, seq=first_seq + i, stage=stage, stream="info", text="x")
        LogLine.objects.filter(pk=line.pk).update(created_at=start + timedelta(seconds=offset))


# --- Who may scrape -------------------------------------------------------------

def test_metrics_are_refused_when_neither_token_nor_allowlist_is_configured(db, client, settings):
    settings.WALLE_METRICS_TOKEN = ""
    settings.WALLE_METRICS_ALLOW = []
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403


def test_metrics_need_the_right_bearer_token(db, client, token):
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token")
    assert wrong.status_code == 401 and wrong["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
    assert client.get("/metrics", **AUTH).status_code == 200


def test_a_logged_in_admin_without_the_token_is_refused(db, client, token):
    client.force_login(helpers.make_user("root", superuser=True))
    assert client.get("/metrics").status_code == 401


def test_an_allowed_address_may_scrape_without_a_token(db, client, settings):
    settings.WALLE_METRICS_TOKEN = ""
    settings.WALLE_METRICS_ALLOW = ["10.1.0.0/16", "192.0.2.7"]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.7").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.2.0.1").status_code == 403


def test_a_typo_in_the_allowlist_refuses_instead_of_failing(db, client, settings):
    settings.WALLE_METRICS_ALLOW = ["not-an-address"]
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403


def test_behind_a_proxy_the_client_cannot_forge_an_allowed_address(db, client, settings):
    settings.WALLE_METRICS_ALLOW = ["10.9.9.9"]
    settings.WALLE_PROXY_COUNT = 1
    # The proxy (REMOTE_ADDR 127.0.0.1) appends the address it saw; what the
    # client sent itself comes first and is ignored.
    forged = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="10.9.9.9, 203.0.113.5")
    assert forged.status_code == 403
    real = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.5, 10.9.9.9")
    assert real.status_code == 200
    # Through the proxy the proxy's own address is not the client's.
    settings.WALLE_METRICS_ALLOW = ["127.0.0.1"]
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403


# --- What is measured ---------------------------------------------------------------

def test_deploys_are_counted_by_project_environment_kind_and_outcome(world, client, token):
    dev = world.users["developer"]
    finished_run(world.project, dev, R.SUCCEEDED, 20)
    finished_run(world.project, dev, R.SUCCEEDED, 40)
    finished_run(world.project, dev, R.FAILED, 3)
    finished_run(world.other_project, dev, R.SUCCEEDED, 10, kind="rollback")
    helpers.make_ticket(world.project, dev, S.QUEUED)  # no run ended: not counted
    samples = scrape(client)

    def deploys(project, outcome, kind="deploy"):
        labels = (("environment", "production"), ("kind", kind), ("outcome", outcome), ("project", project))
        return samples.get(("walle_deploys_total", labels))

    assert deploys("website", "succeeded") == 2
    assert deploys("website", "failed") == 1
    assert deploys("billing", "succeeded", "rollback") == 1
    assert deploys("billing", "succeeded") is None


def test_deploy_durations_form_a_histogram_from_run_timings(world, client, token):
    dev = world.users["developer"]
    for seconds in (4, 20, 45, 700):
        finished_run(world.project, dev, R.SUCCEEDED, seconds)
    samples = scrape(client)
    labels = (("environment", "production"), ("outcome", "succeeded"), ("project", "website"))

    def bucket(le: str) -> float:
        return samples[("walle_deploy_duration_seconds_bucket", tuple(sorted((*labels, ("le", le)))))]

    assert bucket("5.0") == 1
    assert bucket("30.0") == 2
    assert bucket("60.0") == 3
    assert bucket("600.0") == 3
    assert bucket("1200.0") == 4
    assert bucket("+Inf") == 4
    assert samples[("walle_deploy_duration_seconds_count", labels)] == 4
    assert samples[("walle_deploy_duration_seconds_sum", labels)] == pytest.approx(769, abs=0.01)


def test_stage_durations_come_from_the_console_lines_of_each_stage(world, client, token):
    dev = world.users["developer"]
    first = finished_run(world.project, dev, R.SUCCEEDED, 100)
    log_stage(first, "transfer", 3.0, 1)
    log_stage(first, "pre_release", 40.0, 3)
    second = finished_run(world.project, dev, R.FAILED, 100)
    log_stage(second, "transfer", 7.0, 1)
    samples = scrape(client)

    def stage(name: str, suffix: str, le: str | None = None) -> float:
        labels = (("stage", name),) if le is None else (("le", le), ("stage", name))
        return samples[(f"walle_deploy_stage_duration_seconds_{suffix}", labels)]

    assert stage("transfer", "count") == 2
    assert stage("transfer", "sum") == pytest.approx(10.0, abs=0.01)
    assert stage("transfer", "bucket", "5.0") == 1
    assert stage("transfer", "bucket", "10.0") == 2
    assert stage("pre_release", "bucket", "30.0") == 0
    assert stage("pre_release", "bucket", "60.0") == 1


def test_queued_and_running_runs_and_the_broker_queue_are_gauges(world, client, token):
    dev = world.users["developer"]
    for number, status in enumerate((R.QUEUED, R.RUNNING, R.RUNNING), start=1):
        ticket = helpers.make_ticket(world.project, dev, S.QUEUED)
        DeployRun.objects.create(ticket=ticket, number=number, status=status)
    samples = scrape(client)
    assert samples[("walle_runs", (("status", "queued"),))] == 1
    assert samples[("walle_runs", (("status", "running"),))] == 2
    assert samples[("walle_broker_up", ())] == 1
    assert ("walle_broker_queue_size", ()) in samples


def test_a_lock_takeover_counts_once_and_the_holders_heartbeat_age_is_shown(world, client, token):
    dev = world.users["developer"]
    dead_ticket = helpers.make_ticket(world.project, dev, S.QUEUED)
    dead = workflow.start_run(DeployRun.objects.create(ticket=dead_ticket, number=1).pk, "worker-a")
    assert ProjectLease(dead, "worker-a").acquire()[0]
    ProjectLock.objects.filter(run=dead).update(heartbeat_at=timezone.now() - timedelta(minutes=10))
    samples = scrape(client)
    age = samples[("walle_project_lock_heartbeat_age_seconds", (("project", "website"),))]
    assert 590 < age < 700
    assert ("walle_lock_takeovers_total", (("project", "website"),)) not in samples

    next_ticket = helpers.make_ticket(world.project, dev, S.QUEUED)
    taker = workflow.start_run(DeployRun.objects.create(ticket=next_ticket, number=1).pk, "worker-b")
    taken, note = ProjectLease(taker, "worker-b").acquire()
    assert taken and "taken over" in note
    samples = scrape(client)
    assert samples[("walle_lock_takeovers_total", (("project", "website"),))] == 1


def test_a_scrape_costs_the_same_queries_with_many_projects_and_runs(world, client, token,
                                                                     django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    dev = world.users["developer"]
    finished_run(world.project, dev, R.SUCCEEDED, 10)
    with CaptureQueriesContext(connection) as few:
        scrape(client)
    for n in range(12):
        project = helpers.make_project(world.team, name=f"p{n}", slug=f"p{n}")
        run = finished_run(project, dev, R.FAILED if n % 2 else R.SUCCEEDED, 5 + n)
        log_stage(run, "transfer", 1.0 + n, 1)
    with CaptureQueriesContext(connection) as many:
        samples = scrape(client)
    assert len(many.captured_queries) == len(few.captured_queries)
    assert len(many.captured_queries) <= 12
    assert sum(v for (name, _), v in samples.items() if name == "walle_deploys_total") == 13


@pytest.mark.worker
def test_live_worker_clusters_and_their_heartbeats_are_reported(transactional_db, client, token, qcluster):
    # With Redis, other sessions' clusters on this machine may report too: find ours.
    ours = wait_for(lambda: [s for s in health.live_clusters() if s.pid == qcluster.pid], timeout=30)[0]
    labels = (("cluster", str(ours.cluster_id)), ("host", ours.host))
    samples = scrape(client)
    assert samples[("walle_worker_clusters", ())] >= 1
    beat = samples[("walle_worker_heartbeat_timestamp_seconds", labels)]
    assert abs(beat - timezone.now().timestamp()) < 60
    assert samples[("walle_worker_processes", labels)] == 2  # WALLE_WORKERS in the fixture
