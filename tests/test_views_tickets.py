"""The ticket pages against the permission matrix: what each persona sees,
which buttons appear, and which POSTs change anything."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from releases.models import DeployRun, LogLine, Release, RunHost, Ticket, TicketAction, TicketEvent
from tests import helpers

S = Ticket.Status
SEES_WEBSITE = {"guest", "reporter", "developer", "maintainer", "owner", "admin"}
ALL = ["guest", "reporter", "developer", "maintainer", "owner", "outsider", "granted", "admin"]


def login(client, world, name: str):
    client.force_login(world.users[name])
    return client


def snapshot(ticket: Ticket) -> tuple[str, int]:
    ticket.refresh_from_db()
    return ticket.status, TicketEvent.objects.filter(ticket=ticket).count()


@pytest.fixture
def pending(world) -> Ticket:
    return helpers.make_ticket(world.project, world.users["developer"], S.PENDING, title="pending one")


@pytest.fixture
def approved(world) -> Ticket:
    return helpers.make_ticket(world.project, world.users["developer"], S.APPROVED, title="approved one")


def test_anonymous_is_sent_to_login(client, world, pending):
    for url in [reverse("dashboard"), reverse("ticket_list"), reverse("ticket_detail", args=[pending.pk])]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_login_page_renders_and_logs_in(client, world):
    assert client.get(reverse("login")).status_code == 200
    response = client.post(reverse("login"), {"username": "developer", "password": helpers.PASSWORD})
    assert response.status_code == 302 and response["Location"] == reverse("dashboard")


@pytest.mark.parametrize("persona", ALL)
def test_ticket_list_shows_only_visible_tickets(client, world, persona):
    mine = helpers.make_ticket(world.project, world.users["developer"], title="website ticket")
    other = helpers.make_ticket(world.other_project, world.users["outsider"], title="billing ticket")
    body = login(client, world, persona).get(reverse("ticket_list")).content.decode()
    assert (f'data-ticket="{mine.pk}"' in body) is (persona in SEES_WEBSITE)
    assert (f'data-ticket="{other.pk}"' in body) is (persona in {"outsider", "admin"})


@pytest.mark.parametrize("persona", ALL)
def test_detail_is_404_unless_visible(client, world, persona, pending):
    response = login(client, world, persona).get(reverse("ticket_detail", args=[pending.pk]))
    assert response.status_code == (200 if persona in SEES_WEBSITE else 404)


def test_list_filters_and_shows_ref_and_short_commit(client, world):
    dev = world.users["developer"]
    helpers.make_ticket(world.project, dev, S.PENDING, title="alpha", ref="feature-x", commit="b" * 40)
    helpers.make_ticket(world.project, dev, S.SUCCEEDED, title="beta")
    login(client, world, "maintainer")
    body = client.get(reverse("ticket_list")).content.decode()
    assert "feature-x" in body and "b" * 8 in body
    body = client.get(reverse("ticket_list"), {"status": S.SUCCEEDED}).content.decode()
    assert "beta" in body and "alpha" not in body
    body = client.get(reverse("ticket_list"), {"q": "feature"}).content.decode()
    assert "alpha" in body and "beta" not in body
    body = client.get(reverse("ticket_list"), {"author": "maintainer"}).content.decode()
    assert "alpha" not in body


def test_list_is_paginated_by_25_newest_first(client, world):
    for n in range(30):
        helpers.make_ticket(world.project, world.users["developer"], title=f"t{n:02d}")
    page1 = login(client, world, "guest").get(reverse("ticket_list")).content.decode()
    assert page1.count("data-ticket=") == 25 and "t29" in page1 and "t00" not in page1
    page2 = client.get(reverse("ticket_list"), {"page": 2}).content.decode()
    assert page2.count("data-ticket=") == 5 and "t00" in page2


@pytest.mark.parametrize("persona", sorted(SEES_WEBSITE))
def test_approve_and_reject_buttons_only_for_approvers(client, world, persona, pending):
    body = login(client, world, persona).get(reverse("ticket_detail", args=[pending.pk])).content.decode()
    allowed = persona in {"maintainer", "owner", "admin"}
    assert ('id="btn-approve"' in body) is allowed
    assert ('id="btn-reject"' in body) is allowed
    assert ('id="btn-deploy"' in body) is False  # pending: the status does not allow it


@pytest.mark.parametrize("persona", sorted(SEES_WEBSITE))
def test_deploy_button_for_author_and_deployers(client, world, persona, approved):
    body = login(client, world, persona).get(reverse("ticket_detail", args=[approved.pk])).content.decode()
    assert ('id="btn-deploy"' in body) is (persona in {"developer", "maintainer", "owner", "admin"})
    assert ('id="btn-approve"' in body) is False


@pytest.mark.parametrize("persona", ["guest", "reporter", "developer"])
def test_approve_refused_for_the_wrong_roles(client, world, persona, pending):
    before = snapshot(pending)
    response = login(client, world, persona).post(reverse("ticket_approve", args=[pending.pk]))
    assert response.status_code == 403
    assert snapshot(pending) == before


def test_approve_refused_with_404_for_outsider(client, world, pending):
    before = snapshot(pending)
    assert login(client, world, "outsider").post(reverse("ticket_approve", args=[pending.pk])).status_code == 404
    assert snapshot(pending) == before


def test_maintainer_approves(client, world, pending):
    response = login(client, world, "maintainer").post(
        reverse("ticket_approve", args=[pending.pk]), {"version": pending.version}, follow=True)
    assert response.status_code == 200
    assert snapshot(pending)[0] == S.APPROVED
    assert pending.events.last().actor == world.users["maintainer"]


def test_self_approval_refused_in_production_with_reason(client, world):
    own = helpers.make_ticket(world.project, world.users["maintainer"], S.PENDING)
    before = snapshot(own)
    page = login(client, world, "maintainer").get(reverse("ticket_detail", args=[own.pk])).content.decode()
    assert 'id="btn-approve"' not in page
    response = client.post(reverse("ticket_approve", args=[own.pk]))
    assert response.status_code == 403
    assert "someone else must approve" in response.content.decode()
    assert snapshot(own) == before


def test_reject_needs_a_reason_and_records_it(client, world, pending):
    login(client, world, "owner")
    before = snapshot(pending)
    response = client.post(reverse("ticket_reject", args=[pending.pk]), {"reason": "  "}, follow=True)
    assert "Say why" in response.content.decode()
    assert snapshot(pending) == before
    client.post(reverse("ticket_reject", args=[pending.pk]), {"reason": "breaks checkout"})
    pending.refresh_from_db()
    assert pending.status == S.REJECTED and pending.reject_reason == "breaks checkout"


@pytest.mark.parametrize("persona", ["guest", "reporter", "developer"])
def test_reject_refused_for_the_wrong_roles(client, world, persona, pending):
    before = snapshot(pending)
    response = login(client, world, persona).post(reverse("ticket_reject", args=[pending.pk]), {"reason": "no"})
    assert response.status_code == 403
    assert snapshot(pending) == before


def test_cancel_by_author_and_refused_for_reporter(client, world, pending):
    before = snapshot(pending)
    assert login(client, world, "reporter").post(reverse("ticket_cancel", args=[pending.pk])).status_code == 403
    assert snapshot(pending) == before
    login(client, world, "developer").post(reverse("ticket_cancel", args=[pending.pk]))
    assert snapshot(pending)[0] == S.CANCELLED


def test_invalid_transition_is_a_message_not_a_change(client, world):
    done = helpers.make_ticket(world.project, world.users["developer"], S.SUCCEEDED)
    before = snapshot(done)
    response = login(client, world, "maintainer").post(reverse("ticket_cancel", args=[done.pk]), follow=True)
    assert "Cannot cancel a ticket that is succeeded" in response.content.decode()
    assert snapshot(done) == before


@pytest.mark.parametrize("persona", ["guest", "reporter"])
def test_deploy_refused_for_the_wrong_roles(client, world, persona, approved, django_capture_on_commit_callbacks):
    before = snapshot(approved)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = login(client, world, persona).post(reverse("ticket_deploy", args=[approved.pk]))
    assert response.status_code == 403
    assert snapshot(approved) == before and not callbacks
    assert not DeployRun.objects.exists()


def test_developer_cannot_deploy_someone_elses_ticket(client, world, django_capture_on_commit_callbacks):
    theirs = helpers.make_ticket(world.project, world.users["owner"], S.APPROVED)
    before = snapshot(theirs)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = login(client, world, "developer").post(reverse("ticket_deploy", args=[theirs.pk]))
    assert response.status_code == 403 and not callbacks
    assert snapshot(theirs) == before


def test_author_deploys_own_approved_ticket(client, world, approved, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = login(client, world, "developer").post(reverse("ticket_deploy", args=[approved.pk]))
    assert response.status_code == 302
    assert snapshot(approved)[0] == S.QUEUED
    assert len(callbacks) == 1  # the worker task, queued only after commit
    assert DeployRun.objects.get(ticket=approved).status == DeployRun.Status.QUEUED
    page = client.get(reverse("ticket_detail", args=[approved.pk])).content.decode()
    assert 'id="log"' in page and 'data-active="1"' in page


def test_csrf_is_enforced_on_actions(world, pending):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.users["maintainer"])
    before = snapshot(pending)
    assert client.post(reverse("ticket_approve", args=[pending.pk])).status_code == 403
    assert snapshot(pending) == before


def test_actions_refuse_get(client, world, pending):
    before = snapshot(pending)
    assert login(client, world, "maintainer").get(reverse("ticket_approve", args=[pending.pk])).status_code == 405
    assert snapshot(pending) == before


def make_run(ticket: Ticket, lines: int = 5, status=DeployRun.Status.RUNNING) -> DeployRun:
    """Test setup: a run with console lines, as the worker would have written them."""
    run = DeployRun.objects.create(ticket=ticket, number=1, status=status, stage="transfer")
    host = ticket.hosts.first()
    for seq in range(1, lines + 1):
        LogLine.objects.create(run=run, seq=seq, host=host.address, stage="transfer", stream="stdout",
                               text=f"line {seq} <b>bold</b>")
    return run


def test_log_json_returns_only_lines_after_and_live_state(client, world):
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.DEPLOYING)
    make_run(ticket)
    data = login(client, world, "reporter").get(reverse("ticket_log", args=[ticket.pk]), {"after": 3}).json()
    assert [line["seq"] for line in data["lines"]] == [4, 5]
    assert data["last_seq"] == 5 and data["status"] == S.DEPLOYING and data["active"] is True
    assert data["stage"] == "transfer" and 0 < data["progress"] < 100
    assert data["hosts"][0]["state"] == "running" and data["hosts"][0]["text"] == "transfer"
    again = client.get(reverse("ticket_log", args=[ticket.pk]), {"after": 5}).json()
    assert again["lines"] == [] and again["last_seq"] == 5


def test_log_is_refused_for_guests_and_hidden_on_their_page(client, world):
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.DEPLOYING)
    make_run(ticket)
    login(client, world, "guest")
    assert client.get(reverse("ticket_log", args=[ticket.pk])).status_code == 403
    page = client.get(reverse("ticket_detail", args=[ticket.pk])).content.decode()
    assert "line 1" not in page and 'id="log"' not in page
    assert login(client, world, "outsider").get(reverse("ticket_log", args=[ticket.pk])).status_code == 404


def test_console_renders_log_escaped(client, world):
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.DEPLOYING)
    make_run(ticket)
    page = login(client, world, "reporter").get(reverse("ticket_detail", args=[ticket.pk])).content.decode()
    assert "line 5 &lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold</b>" not in page
    assert 'data-after="5"' in page


def finished_deploy(world) -> Ticket:
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.SUCCEEDED)
    run = make_run(ticket, lines=1, status=DeployRun.Status.SUCCEEDED)
    host = ticket.hosts.first()
    RunHost.objects.create(run=run, host=host, status=RunHost.Status.DONE, release="20250101-000000-1")
    Release.objects.create(project=world.project, host=host, name="20250101-000000-1", commit=ticket.commit,
                           ticket=ticket, run=run, is_live=True)
    return ticket


@pytest.mark.parametrize("persona", sorted(SEES_WEBSITE))
def test_rollback_button_only_for_rollbackers(client, world, persona):
    ticket = finished_deploy(world)
    body = login(client, world, persona).get(reverse("ticket_detail", args=[ticket.pk])).content.decode()
    assert ('id="btn-rollback"' in body) is (persona in {"maintainer", "owner", "admin"})


def test_rollback_without_approval_runs_at_once_and_names_what_it_returns_to(client, world):
    ticket = finished_deploy(world)
    before = Ticket.objects.count()
    assert login(client, world, "developer").post(reverse("ticket_rollback", args=[ticket.pk])).status_code == 403
    assert Ticket.objects.count() == before
    response = login(client, world, "maintainer").post(
        reverse("ticket_rollback", args=[ticket.pk]), {"release": "20250101-000000-1"})
    rollback = Ticket.objects.get(rollback_of=ticket)
    assert response["Location"] == reverse("ticket_detail", args=[rollback.pk])
    # Production rollbacks need no approval: the one confirmation queued the run.
    assert rollback.status == S.QUEUED and rollback.runs.count() == 1
    assert rollback.rollback_release == "20250101-000000-1"
    assert rollback.title == f"Roll back #{ticket.pk}: back to 20250101-000000-1 (master {ticket.commit[:7]})"
    assert (rollback.ref, rollback.commit) == (ticket.ref, ticket.commit)  # what the release holds
    page = client.get(response["Location"]).content.decode()
    assert 'id="btn-deploy"' not in page and "back to 20250101-000000-1" in page


def test_rollback_that_needs_approval_is_requested_not_run(client, world):
    world.project.environment.rollback_needs_approval = True
    world.project.environment.save()
    ticket = finished_deploy(world)
    page = login(client, world, "maintainer").get(reverse("ticket_detail", args=[ticket.pk])).content.decode()
    assert "Request rollback" in page and "data-confirm" not in page
    client.post(reverse("ticket_rollback", args=[ticket.pk]), {"release": "20250101-000000-1"})
    rollback = Ticket.objects.get(rollback_of=ticket)
    assert rollback.status == S.PENDING and not rollback.runs.exists()


def test_rollback_refuses_a_release_that_is_not_kept(client, world):
    ticket = finished_deploy(world)
    login(client, world, "maintainer").post(reverse("ticket_rollback", args=[ticket.pk]), {"release": "../../etc"})
    assert not Ticket.objects.filter(rollback_of=ticket).exists()


def test_dashboard_shows_my_approvals_running_and_live(client, world, pending):
    finished_deploy(world)
    running = helpers.make_ticket(world.project, world.users["developer"], S.DEPLOYING, title="running one")
    body = login(client, world, "maintainer").get(reverse("dashboard")).content.decode()
    assert "pending one" in body and "running one" in body and "a" * 8 in body
    dev = login(client, world, "developer").get(reverse("dashboard")).content.decode()
    assert "pending one" not in dev and "running one" in dev
    outsider = login(client, world, "outsider").get(reverse("dashboard")).content.decode()
    assert "running one" not in outsider
    assert reverse("ticket_detail", args=[running.pk]) not in outsider


def edit_data(ticket: Ticket, **changes) -> dict:
    """What the edit page posts: every field, as shown, plus the changes."""
    data = {"title": ticket.title, "description": ticket.description, "ref": ticket.ref,
            "commit": ticket.commit, "hosts": [h.pk for h in ticket.hosts.all()]}
    return {**data, **changes}


def test_edit_by_author_only(client, world, approved):
    assert login(client, world, "maintainer").get(reverse("ticket_edit", args=[approved.pk])).status_code == 403
    before = snapshot(approved)
    response = client.post(reverse("ticket_edit", args=[approved.pk]), edit_data(approved, title="theirs"))
    assert response.status_code == 403 and snapshot(approved) == before and approved.title == "approved one"
    page = login(client, world, "developer").get(reverse("ticket_edit", args=[approved.pk])).content.decode()
    assert 'name="ref"' in page and 'name="commit"' in page and 'name="hosts"' in page
    # Unchanged ref and commit are not resolved again (this project's repository is not reachable).
    client.post(reverse("ticket_edit", args=[approved.pk]), edit_data(approved, title="renamed"))
    approved.refresh_from_db()
    # production: an approved ticket that changed needs approval again
    assert approved.title == "renamed" and approved.status == S.PENDING


def test_edit_changes_hosts(client, world):
    second = helpers.make_host()
    world.project.hosts.add(second)
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.REJECTED)
    assert ticket.hosts.count() == 2
    response = login(client, world, "developer").post(
        reverse("ticket_edit", args=[ticket.pk]), edit_data(ticket, hosts=[second.pk]))
    assert response.status_code == 302
    ticket.refresh_from_db()
    assert list(ticket.hosts.all()) == [second] and ticket.status == S.PENDING


def test_rollback_ticket_edit_keeps_ref_commit_and_hosts(client, world):
    rollback = helpers.make_ticket(world.project, world.users["developer"], S.PENDING, kind=Ticket.Kind.ROLLBACK)
    page = login(client, world, "developer").get(reverse("ticket_edit", args=[rollback.pk])).content.decode()
    assert 'name="title"' in page and 'name="ref"' not in page and 'name="hosts"' not in page
    client.post(reverse("ticket_edit", args=[rollback.pk]), {"title": "undo it", "ref": "evil", "commit": "b" * 40})
    rollback.refresh_from_db()
    assert rollback.title == "undo it" and rollback.ref == "master" and rollback.commit == "a" * 40


def failed_deploy_with_details(world) -> Ticket:
    """A failed run whose hosts, errors and event notes carry deploy details."""
    host = world.project.hosts.first()
    host.label = "web-secret-label"
    host.save()
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.FAILED)
    run = DeployRun.objects.create(ticket=ticket, number=1, status=DeployRun.Status.FAILED,
                                   stage="transfer", error="run error text")
    RunHost.objects.create(run=run, host=host, status=RunHost.Status.FAILED, error="host error text")
    LogLine.objects.create(run=run, seq=1, host=host.endpoint, stage="transfer", stream="stderr", text="log text")
    TicketEvent.objects.create(ticket=ticket, action=TicketAction.FAIL, from_status=S.DEPLOYING, to_status=S.FAILED,
                               note=f"ssh to {host.endpoint} refused: event note text")
    return ticket


def test_guest_sees_no_hosts_errors_or_event_notes_on_the_ticket_page(client, world):
    ticket = failed_deploy_with_details(world)
    address = world.project.hosts.first().address
    secrets = [address, "web-secret-label", "run error text", "host error text", "event note text", "log text"]
    page = login(client, world, "guest").get(reverse("ticket_detail", args=[ticket.pk])).content.decode()
    assert "Failed" in page and 'id="timeline"' in page and ">failed<" in page  # the ticket and its timeline (the event's label)
    assert [s for s in secrets if s in page] == []
    assert 'id="hostchips"' not in page and 'id="host-results"' not in page
    log = client.get(reverse("ticket_log", args=[ticket.pk]))
    assert log.status_code == 403 and address not in log.content.decode()
    # A Reporter (VIEW_DETAILS) sees all of it.
    page = login(client, world, "reporter").get(reverse("ticket_detail", args=[ticket.pk])).content.decode()
    assert [s for s in secrets if s not in page] == []


def test_host_chips_follow_the_engines_host_names(client, world):
    host = helpers.make_host(port=2222)
    world.project.hosts.set([host])
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.DEPLOYING)
    run = DeployRun.objects.create(ticket=ticket, number=1, status=DeployRun.Status.RUNNING, stage="transfer")
    LogLine.objects.create(run=run, seq=1, host=f"{host.address}:2222", stage="transfer", stream="stdout", text="x")
    data = login(client, world, "reporter").get(reverse("ticket_log", args=[ticket.pk])).json()
    assert data["hosts"] == [{"name": f"{host.address}:2222", "label": "", "state": "running", "text": "transfer"}]


def test_a_refused_move_names_the_action_in_the_readers_language(client, world):
    done = helpers.make_ticket(world.project, world.users["developer"], S.SUCCEEDED)
    response = login(client, world, "maintainer").post(reverse("ticket_cancel", args=[done.pk]), follow=True,
                                                       HTTP_ACCEPT_LANGUAGE="zh-CN")
    assert "上线单当前状态为“成功”，不能取消。" in response.content.decode()
