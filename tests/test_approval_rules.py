"""Approval rules: an environment may require N approvals of the same ticket
version from distinct people who may approve (never its author where
self-approval is off); an edit discards the approvals given so far; the ticket
page, the lists and the API show who approved and how many are still needed."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import Role
from accounts.permissions import AlreadyApproved, approvable
from audit.models import AuditEntry, Kind
from notifications.events import ticket_message
from notifications.models import Event
from notifications.models import Kind as ChannelKind
from releases import workflow
from releases.models import Approval, Ticket, TicketAction
from tests.notify_receiver import receiver  # noqa: F401 - the receiver fixture
from tests.test_notifications_delivery import make_channel
from tests.test_query_counts import queries_of

from . import helpers

S = Ticket.Status
ALREADY = "You have already approved this ticket; it needs another approver."


@pytest.fixture
def two(world):
    """Production asks for two approvals; the Developer's ticket waits for them."""
    env = world.project.environment
    env.approvals_required = 2
    env.save()
    return helpers.make_ticket(world.project, world.users["developer"], S.PENDING, title="ship search")


def approve(world, persona: str, ticket: Ticket) -> Ticket:
    """Approve the ticket as the approver's freshly loaded page shows it."""
    fresh = Ticket.objects.get(pk=ticket.pk)
    return workflow.approve(world.users[persona], fresh, version=fresh.version)


# --- The workflow ----------------------------------------------------------------

def test_two_distinct_approvers_are_needed_where_the_environment_asks_for_two(world, two):
    first = approve(world, "maintainer", two)
    assert first.status == S.PENDING
    partial = first.events.last()
    assert (partial.action, partial.actor, partial.from_status, partial.to_status) == (
        TicketAction.APPROVE_PARTIAL, world.users["maintainer"], "", "")
    assert partial.note == "1 of 2 approvals"
    second = approve(world, "owner", two)
    assert second.status == S.APPROVED
    assert second.events.last().action == TicketAction.APPROVE and second.events.last().note == "2 of 2 approvals"
    assert list(second.approvals.values_list("approver__username", "version")) == [
        ("maintainer", 1), ("owner", 1)]


def test_the_same_person_approving_twice_is_refused_and_counts_once(world, two):
    approve(world, "maintainer", two)
    with pytest.raises(AlreadyApproved, match=ALREADY):
        approve(world, "maintainer", two)
    two.refresh_from_db()
    assert two.status == S.PENDING and two.approvals.count() == 1
    assert two.events.filter(action=TicketAction.APPROVE_PARTIAL).count() == 1


def test_the_author_is_never_one_of_the_approvers_where_self_approval_is_off(world, two):
    own = helpers.make_ticket(world.project, world.users["maintainer"], S.PENDING)
    with pytest.raises(PermissionDenied, match="someone else must approve"):
        approve(world, "maintainer", own)
    assert not own.approvals.exists()
    approve(world, "owner", own)
    assert Ticket.objects.get(pk=own.pk).status == S.PENDING  # one of two: the author's never counts


def test_where_self_approval_is_allowed_the_author_counts_as_one_approver(world):
    env = helpers.environment("staging")
    env.approvals_required = 2
    env.save()
    project = helpers.make_project(world.team, env="staging")
    own = helpers.make_ticket(project, world.users["maintainer"], S.PENDING)
    assert approve(world, "maintainer", own).status == S.PENDING
    assert approve(world, "owner", own).status == S.APPROVED


def test_an_edit_discards_the_approvals_given_so_far(world, two):
    approve(world, "maintainer", two)
    edited = workflow.edit(world.users["developer"], Ticket.objects.get(pk=two.pk), title="ship search v2")
    assert edited.version == 2 and edited.status == S.PENDING
    assert "earlier approvals no longer count" in edited.events.last().note
    # The maintainer approved version 1 only: he may approve version 2, and it still needs two.
    assert approve(world, "maintainer", two).status == S.PENDING
    assert approve(world, "owner", two).status == S.APPROVED
    assert two.approvals.count() == 3  # the discarded one stays as history


def test_an_edit_after_approval_needs_all_n_approvals_again(world, two):
    approve(world, "maintainer", two)
    approve(world, "owner", two)
    reopened = workflow.edit(world.users["developer"], Ticket.objects.get(pk=two.pk), commit="c" * 40)
    assert reopened.status == S.PENDING
    assert approve(world, "owner", two).status == S.PENDING
    assert approve(world, "maintainer", two).status == S.APPROVED


def test_a_rejected_ticket_resubmitted_unchanged_needs_all_n_approvals_again(world, two):
    approve(world, "maintainer", two)
    workflow.reject(world.users["owner"], Ticket.objects.get(pk=two.pk), "not before the release notes")
    resubmitted = workflow.edit(world.users["developer"], Ticket.objects.get(pk=two.pk))
    assert (resubmitted.status, resubmitted.version) == (S.PENDING, 2)
    assert approve(world, "owner", two).status == S.PENDING
    assert approve(world, "maintainer", two).status == S.APPROVED


def test_an_approval_of_a_version_edited_since_records_nothing(world, two):
    seen = two.version
    workflow.edit(world.users["developer"], Ticket.objects.get(pk=two.pk), description="more")
    with pytest.raises(workflow.StaleTicket):
        workflow.approve(world.users["maintainer"], two, version=seen)
    assert not two.approvals.exists()


def test_any_eligible_approver_still_rejects_even_one_who_approved(world, two):
    approve(world, "maintainer", two)
    rejected = workflow.reject(world.users["maintainer"], Ticket.objects.get(pk=two.pk), "found a bug")
    assert rejected.status == S.REJECTED
    other = helpers.make_ticket(world.project, world.users["developer"], S.PENDING)
    assert workflow.reject(world.users["owner"], other, "not today").status == S.REJECTED


def test_with_one_approval_required_the_first_approval_approves_as_before(world):
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.PENDING)
    approved = workflow.approve(world.users["owner"], ticket, "looks good", version=ticket.version)
    assert approved.status == S.APPROVED
    assert approved.events.last().note == "looks good"
    assert not approved.events.filter(action=TicketAction.APPROVE_PARTIAL).exists()


def test_a_rollback_that_needs_approval_needs_the_same_n(world, two):
    env = world.project.environment
    env.rollback_needs_approval = True
    env.save()
    rollback = helpers.make_ticket(world.project, world.users["developer"], S.PENDING, kind=Ticket.Kind.ROLLBACK)
    assert approve(world, "maintainer", rollback).status == S.PENDING
    assert approve(world, "owner", rollback).status == S.APPROVED


def test_the_dashboard_queue_leaves_out_what_i_already_approved(world, two):
    others = helpers.make_ticket(world.project, world.users["developer"], S.PENDING)
    approve(world, "maintainer", two)
    pending = Ticket.objects.filter(status=S.PENDING)
    assert set(approvable(world.users["maintainer"], pending)) == {others}
    assert set(approvable(world.users["owner"], pending)) == {two, others}


def test_a_partial_approval_is_an_audit_entry_and_sends_no_notification(world, two, receiver,  # noqa: F811
                                                                         django_capture_on_commit_callbacks):
    make_channel(ChannelKind.WEBHOOK, receiver, project=world.project)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        approve(world, "maintainer", two)
    assert callbacks == []
    entry = AuditEntry.objects.filter(kind=Kind.TICKET).order_by("-id").first()
    assert (entry.action, entry.actor, entry.note) == (
        TicketAction.APPROVE_PARTIAL, world.users["maintainer"], "1 of 2 approvals")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        approve(world, "owner", two)
    assert len(callbacks) == 1  # the "approved" event, once the ticket is approved


def test_the_approved_message_names_every_approver(world, two):
    approve(world, "maintainer", two)
    approved = approve(world, "owner", two)
    message = ticket_message(approved, Event.APPROVED, approved.events.last())
    assert message.who == "maintainer, owner"


# --- The pages --------------------------------------------------------------------

def page(client, world, persona: str, ticket: Ticket) -> str:
    client.force_login(world.users[persona])
    return client.get(reverse("ticket_detail", args=[ticket.pk])).content.decode()


def test_the_ticket_page_shows_who_approved_and_how_many_more_are_needed(client, world, two):
    body = page(client, world, "owner", two)
    assert "Approvals: 0 of 2" in body
    assert "Waiting for 2 approvals by different Maintainers or Owners of web other than its submitter." in body
    approve(world, "maintainer", two)
    body = page(client, world, "owner", two)
    assert "Approvals: 1 of 2 — approved by <span class=\"approver\">maintainer (" in body
    assert ("Waiting for 1 more approval by a Maintainer or Owner of web other than its submitter and those "
            "who approved.") in body
    assert 'id="btn-approve"' in body


def test_who_approved_sees_approve_disabled_with_why_and_may_still_reject(client, world, two):
    approve(world, "maintainer", two)
    body = page(client, world, "maintainer", two)
    assert 'id="btn-approve"' not in body and 'id="btn-approve-blocked"' in body
    assert ALREADY in body
    assert 'id="btn-reject"' in body


def test_a_second_approval_posted_by_the_same_person_is_refused_with_the_reason(client, world, two):
    approve(world, "maintainer", two)
    client.force_login(world.users["maintainer"])
    response = client.post(reverse("ticket_approve", args=[two.pk]), {"version": two.version})
    assert response.status_code == 403 and ALREADY in response.content.decode()
    assert two.approvals.count() == 1


def test_the_ticket_list_and_dashboard_show_approvals_so_far_for_pending_tickets(client, world, two):
    approve(world, "maintainer", two)
    client.force_login(world.users["owner"])
    listed = client.get(reverse("ticket_list")).content.decode()
    assert '<small class="approval-count"' in listed and ">1/2</small>" in listed
    dashboard = client.get(reverse("dashboard")).content.decode()
    assert ">1/2</small>" in dashboard


def test_the_environment_admin_refuses_zero_approvals(client, world):
    env = world.project.environment
    client.force_login(world.users["admin"])
    response = client.post(reverse("admin:projects_environment_change", args=[env.pk]), {
        "name": env.name, "slug": env.slug, "order": env.order, "deploy_needs_approval": "on",
        "rollback_needs_approval": "", "allow_self_approval": "", "approvals_required": "0", "time_zone": "UTC",
        **{f"{prefix}-{name}": value for prefix in ("deploy_windows", "deploy_freezes")
           for name, value in (("TOTAL_FORMS", "0"), ("INITIAL_FORMS", "0"))},
    })
    assert response.status_code == 200 and "greater than or equal to 1" in response.content.decode()
    env.refresh_from_db()
    assert env.approvals_required == 1
    client.post(reverse("admin:projects_environment_change", args=[env.pk]), {
        "name": env.name, "slug": env.slug, "order": env.order, "deploy_needs_approval": "on",
        "rollback_needs_approval": "", "allow_self_approval": "", "approvals_required": "2", "time_zone": "UTC",
        **{f"{prefix}-{name}": value for prefix in ("deploy_windows", "deploy_freezes")
           for name, value in (("TOTAL_FORMS", "0"), ("INITIAL_FORMS", "0"))},
    })
    env.refresh_from_db()
    assert env.approvals_required == 2
    entry = AuditEntry.objects.filter(kind=Kind.ENVIRONMENT).order_by("-id").first()
    assert entry.changes["approvals_required"] == [1, 2]


def test_the_admin_approve_action_goes_through_the_same_rules(client, world, two):
    client.force_login(world.users["maintainer"])
    url = reverse("admin:releases_ticket_changelist")
    shown = client.post(url, {"action": "approve", "_selected_action": [two.pk]}).content.decode()
    assert '<td class="approval-count">0/2</td>' in shown
    confirm = {"action": "approve", "_selected_action": [two.pk], "confirm": "yes", f"version_{two.pk}": two.version}
    client.post(url, confirm)
    assert Ticket.objects.get(pk=two.pk).status == S.PENDING and two.approvals.count() == 1
    response = client.post(url, confirm, follow=True)
    assert ALREADY in response.content.decode()
    assert two.approvals.count() == 1


# --- The API ------------------------------------------------------------------------

def api_as(world, persona: str) -> APIClient:
    api = APIClient()
    api.force_authenticate(world.users[persona])
    return api


def test_the_api_ticket_shows_approvals_required_and_who_approved_which_version(world, two):
    approve(world, "maintainer", two)
    data = api_as(world, "guest").get(f"/api/tickets/{two.pk}/").json()
    assert (data["approvals_required"], data["approval_count"]) == (2, 1)
    [given] = data["approvals"]
    assert (given["approver"], given["version"]) == ("maintainer", 1) and given["created_at"]
    row = api_as(world, "guest").get("/api/tickets/").json()["results"][0]
    assert (row["id"], row["approvals_required"], row["approval_count"]) == (two.pk, 2, 1)


def test_the_api_approve_answers_still_pending_with_the_count_then_approved(world, two):
    first = api_as(world, "maintainer").post(f"/api/tickets/{two.pk}/approve/", {"version": 1}, format="json")
    assert first.status_code == 200
    assert (first.json()["status"], first.json()["approval_count"]) == (S.PENDING, 1)
    second = api_as(world, "owner").post(f"/api/tickets/{two.pk}/approve/", {"version": 1}, format="json")
    assert (second.json()["status"], second.json()["approval_count"]) == (S.APPROVED, 2)


def test_the_api_refuses_a_second_approval_the_authors_and_a_stale_one_with_reasons(world, two):
    api = api_as(world, "maintainer")
    api.post(f"/api/tickets/{two.pk}/approve/", {"version": 1}, format="json")
    again = api.post(f"/api/tickets/{two.pk}/approve/", {"version": 1}, format="json")
    assert again.status_code == 403 and again.json()["detail"] == ALREADY
    own = helpers.make_ticket(world.project, world.users["owner"], S.PENDING)
    mine = api_as(world, "owner").post(f"/api/tickets/{own.pk}/approve/", {"version": 1}, format="json")
    assert mine.status_code == 403 and "someone else must approve" in mine.json()["detail"]
    workflow.edit(world.users["developer"], Ticket.objects.get(pk=two.pk), title="changed")
    stale = api_as(world, "owner").post(f"/api/tickets/{two.pk}/approve/", {"version": 1}, format="json")
    assert stale.status_code == 409 and "changed since you loaded it" in stale.json()["detail"]
    assert Approval.objects.filter(ticket=two).count() == 1


def test_the_api_schema_lists_the_approval_fields(tmp_path, db):
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    assert "approvals_required:" in text and "approval_count:" in text
    assert "    Approval:" in text and "$ref: '#/components/schemas/Approval'" in text


def test_a_second_maintainer_is_an_approver_like_the_first(world, two):
    second = helpers.make_user("maintainer2")
    helpers.add_member(second, world.team, Role.MAINTAINER)
    approve(world, "maintainer", two)
    assert workflow.approve(second, two, version=two.version).status == S.APPROVED


def test_approval_counts_cost_no_query_per_row_in_lists_and_the_api(client, world, two):
    client.force_login(world.users["owner"])
    api = api_as(world, "owner")

    def add_approved_tickets(count: int) -> None:
        for _ in range(count):
            approve(world, "maintainer", helpers.make_ticket(world.project, world.users["developer"], S.PENDING))

    add_approved_tickets(3)
    few = [queries_of(lambda u=u: client.get(reverse(u))) for u in ("dashboard", "ticket_list")]
    few_api = queries_of(lambda: api.get("/api/tickets/"))
    add_approved_tickets(20)
    assert [queries_of(lambda u=u: client.get(reverse(u))) for u in ("dashboard", "ticket_list")] == few
    assert queries_of(lambda: api.get("/api/tickets/")) == few_api
