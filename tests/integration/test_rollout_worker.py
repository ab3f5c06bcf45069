"""Rollouts through the worker on the real sshd + nginx hosts: the health gate
switching back exactly the switched hosts, waiting for a promote, a cancel
while waiting, the promote timeout, and retrying a failed ticket with the
release its run prepared."""

from __future__ import annotations

import threading

import pytest
from django.core.exceptions import PermissionDenied

from notifications.events import ticket_message
from notifications.models import Event
from projects.models import RolloutStrategy
from releases import tasks, workflow
from releases.models import DeployRun, ProjectLock, RunHost, Ticket, TicketAction
from tests.deploy_fixtures import V1_TEXT, V2_TEXT, deploy_now, open_approved_ticket, wait_for

pytestmark = pytest.mark.sshd
S = Ticket.Status
WEBROOT = "/data/nginx/website"
# pre_release breaks the page only on a host where the test put this file.
BREAK_HERE = "/data/nginx/break-here"
BREAK_IF_MARKED = f"if [ -e {BREAK_HERE} ]; then echo broken > index.html; fi"


def canary(site, **changes) -> None:
    """A canary of one host, then one host per batch, gated on the v2 text."""
    ports = {t.http_port for t in site.targets}
    assert len(ports) == 1, ports
    values = dict(rollout_strategy=RolloutStrategy.CANARY, canary_hosts=1, batch_size=1, health_path="/",
                  health_port=ports.pop(), health_text=V2_TEXT, health_retries=0, health_timeout=5)
    for name, value in (values | changes).items():
        setattr(site.project, name, value)
    site.project.save()


def v1_live_then_v2(site) -> list[str]:
    """Deploy v1 everywhere (all at once), push v2; return each webroot's target."""
    first = deploy_now(site.users["developer"], open_approved_ticket(site, "v1"))
    assert first.status == DeployRun.Status.SUCCEEDED, first.error
    site.push("v2", V2_TEXT)
    return [t.readlink(WEBROOT) for t in site.targets]


def serves_as_before(site, before: list[str]) -> bool:
    """Every webroot is the link it was before the run, and every page is v1's."""
    return [t.readlink(WEBROOT) for t in site.targets] == before and all(V1_TEXT in page for page in site.pages())


def host_states(run: DeployRun) -> dict[str, str]:
    return dict(RunHost.objects.filter(run=run).values_list("host__address", "status"))


def test_a_failed_health_gate_fails_the_ticket_and_switches_back_exactly_the_switched_hosts(site):
    before = v1_live_then_v2(site)
    canary(site, pre_release=BREAK_IF_MARKED)
    site.targets[1].data_path(BREAK_HERE).write_text("")
    ticket = open_approved_ticket(site, "v2")
    run = deploy_now(site.users["developer"], ticket)
    ticket.refresh_from_db()
    assert (ticket.status, run.status, run.failed_batch) == (S.FAILED, DeployRun.Status.FAILED, "2/3")
    assert serves_as_before(site, before)
    assert host_states(run) == {"127.0.0.11": RunHost.Status.REVERTED, "127.0.0.12": RunHost.Status.REVERTED,
                                "127.0.0.13": RunHost.Status.PREPARED}
    assert "but the page lacks the expected text" in run.error
    assert run.log_lines.filter(stage="health_check", host="127.0.0.12", stream="error").exists()
    assert run.log_lines.filter(text__startswith="batch 2/3: switching 127.0.0.12").exists()
    # What each host serves is recorded: v1's release is live again everywhere.
    assert not workflow.switched_hosts(ticket).exists()
    message = ticket_message(ticket, Event.FAILED, ticket.events.filter(action=TicketAction.FAIL).last())
    assert "Batch 2/3 of the rollout failed." in message.as_text()


def _start_worker(run: DeployRun) -> threading.Thread:
    worker = threading.Thread(target=tasks.run_deploy, args=(run.pk,))
    worker.start()
    return worker


def _waiting(ticket: Ticket) -> Ticket | None:
    ticket.refresh_from_db()
    return ticket if ticket.status == S.WAITING else None


def test_the_rollout_waits_for_a_promote_with_the_canary_switched(site, settings):
    settings.WALLE_PROMOTE_POLL = 1
    v1_live_then_v2(site)
    canary(site, batch_size=0, promote_required=True)
    ticket = open_approved_ticket(site, "v2")
    worker = _start_worker(workflow.deploy(site.users["developer"], ticket))
    try:
        wait_for(lambda: _waiting(ticket), timeout=120, interval=0.2)
        run = ticket.latest_run()
        assert run.status == DeployRun.Status.WAITING
        assert [V2_TEXT in page for page in site.pages()] == [True, False, False]
        assert ProjectLock.objects.filter(run=run).exists()  # the project stays held while it waits
        with pytest.raises(PermissionDenied):
            workflow.promote(site.users["reporter"], ticket)
        workflow.promote(site.users["developer"], ticket)
    finally:
        worker.join(timeout=180)
    ticket.refresh_from_db()
    assert ticket.status == S.SUCCEEDED
    assert all(V2_TEXT in page for page in site.pages())
    actions = list(ticket.events.values_list("action", flat=True))
    assert actions[-3:] == [TicketAction.WAIT, TicketAction.PROMOTE, TicketAction.SUCCEED]
    assert ticket.latest_run().log_lines.filter(text__startswith="waiting for a promote before batch 2/2").exists()


def test_cancel_while_waiting_switches_the_canary_back_and_cancels_the_ticket(site, settings):
    settings.WALLE_PROMOTE_POLL = 1
    before = v1_live_then_v2(site)
    canary(site, batch_size=0, promote_required=True)
    ticket = open_approved_ticket(site, "v2")
    worker = _start_worker(workflow.deploy(site.users["developer"], ticket))
    try:
        wait_for(lambda: _waiting(ticket), timeout=120, interval=0.2)
        assert [V2_TEXT in page for page in site.pages()] == [True, False, False]
        with pytest.raises(PermissionDenied):
            workflow.cancel(site.users["reporter"], ticket)
        workflow.cancel(site.users["developer"], ticket, "the canary looks wrong")
    finally:
        worker.join(timeout=180)
    assert not worker.is_alive()
    ticket.refresh_from_db()
    run = ticket.latest_run()
    assert (ticket.status, run.status, run.failed_batch) == (S.CANCELLED, DeployRun.Status.CANCELLED, "")
    # The canary serves v1 again, through the very link it had; the others were never switched.
    assert serves_as_before(site, before)
    assert host_states(run) == {"127.0.0.11": RunHost.Status.REVERTED, "127.0.0.12": RunHost.Status.PREPARED,
                                "127.0.0.13": RunHost.Status.PREPARED}
    assert not workflow.switched_hosts(ticket).exists()
    assert run.error == "batch 2/2: cancelled by developer"
    assert run.log_lines.filter(text="switching back 127.0.0.11 because cancelled by developer").exists()
    assert run.log_lines.filter(host="127.0.0.12", text__contains="not switched because cancelled by developer").exists()
    assert run.log_lines.last().text.startswith("Cancelled: every host this run switched serves what it served")
    # A person stopped the rollout; nothing failed, and the console does not say it did.
    assert run.log_lines.filter(stage="finish", text="stopped before batch 2/2: cancelled by developer").exists()
    assert not run.log_lines.filter(text__startswith="failed").exists()
    assert not run.log_lines.filter(host="", stream="error").exists()
    assert list(ticket.events.values_list("action", flat=True))[-3:] == [
        TicketAction.WAIT, TicketAction.CANCEL, TicketAction.SWITCH_BACK
    ]
    assert not ProjectLock.objects.exists()  # the project is free for the next deploy


def test_no_promote_in_time_fails_the_run_and_switches_the_canary_back(site, settings):
    settings.WALLE_PROMOTE_POLL = 1
    settings.WALLE_PROMOTE_TIMEOUT = 2
    before = v1_live_then_v2(site)
    canary(site, batch_size=0, promote_required=True, health_path="")
    ticket = open_approved_ticket(site, "v2")
    run = deploy_now(site.users["developer"], ticket)
    ticket.refresh_from_db()
    assert (ticket.status, run.failed_batch) == (S.FAILED, "2/2")
    assert "no promote came within 2 s" in run.error
    assert [t.readlink(WEBROOT) for t in site.targets] == before
    assert not ProjectLock.objects.exists()


def test_retry_reuses_the_prepared_release_and_repeats_only_the_failed_host(site):
    v1_live_then_v2(site)
    # The marked host fails pre_release last, so the others finish preparing.
    site.project.pre_release = f"if [ -e {BREAK_HERE} ]; then sleep 3; exit 1; fi"
    site.project.save()
    site.targets[2].data_path(BREAK_HERE).write_text("")
    ticket = open_approved_ticket(site, "v2")
    failed = deploy_now(site.users["developer"], ticket)
    ticket.refresh_from_db()
    assert ticket.status == S.FAILED and "nothing was switched" in failed.error
    site.targets[2].data_path(BREAK_HERE).unlink()
    retry = workflow.retry(site.users["developer"], ticket)
    tasks.run_deploy(retry.pk)
    retry.refresh_from_db()
    ticket.refresh_from_db()
    assert ticket.status == S.SUCCEEDED, retry.error
    assert retry.release_name == failed.release_name and retry.resumes_id == failed.pk
    assert all(V2_TEXT in page for page in site.pages())
    reused = retry.log_lines.filter(text__contains="an earlier run prepared it completely")
    assert sorted(reused.values_list("host", flat=True)) == ["127.0.0.11", "127.0.0.12"]
    assert set(retry.log_lines.filter(stage="transfer").values_list("host", flat=True)) == {"127.0.0.13"}
    assert ticket.events.filter(action=TicketAction.RETRY).exists()


def test_retry_after_a_failed_switch_completes_the_remaining_hosts(site):
    v1_live_then_v2(site)
    site.project.post_release = f"test ! -e {BREAK_HERE}"
    site.project.post_release_delay = 1
    site.project.rollout_strategy = RolloutStrategy.ONE_BY_ONE
    site.project.save()
    site.targets[1].data_path(BREAK_HERE).write_text("")
    ticket = open_approved_ticket(site, "v2")
    failed = deploy_now(site.users["developer"], ticket)
    assert failed.failed_batch == "2/3"
    assert [V2_TEXT in page for page in site.pages()] == [True, True, False]
    site.targets[1].data_path(BREAK_HERE).unlink()
    retry = workflow.retry(site.users["maintainer"], ticket)
    tasks.run_deploy(retry.pk)
    ticket.refresh_from_db()
    assert ticket.status == S.SUCCEEDED
    assert all(V2_TEXT in page for page in site.pages())
    retry.refresh_from_db()
    assert retry.log_lines.filter(host="127.0.0.11", text__contains="finished by an earlier run").exists()
    assert not retry.log_lines.filter(host="127.0.0.11", stage="post_release").exists()


def test_a_ticket_may_pick_a_more_careful_rollout_only(site):
    site.project.rollout_strategy = RolloutStrategy.ONE_BY_ONE
    site.project.save()
    with pytest.raises(workflow.WorkflowError):
        workflow.submit(site.users["developer"], site.project, title="fast", ref="master",
                        commit=site.commits["v1"], rollout_strategy=RolloutStrategy.ALL_AT_ONCE)
    ticket = workflow.submit(site.users["developer"], site.project, title="careful", ref="master",
                             commit=site.commits["v1"], rollout_strategy=RolloutStrategy.CANARY)
    assert ticket.rollout_strategy == RolloutStrategy.CANARY
