"""The permission matrix through the REST API, for every persona: lists show
only visible objects, invisible objects are 404, and each workflow endpoint
refuses the wrong role without changing the ticket or queueing work."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts import grants
from accounts.permissions import Action
from releases.models import DeployRun, LogLine, Release, RunHost, Ticket

from . import helpers

S = Ticket.Status
ALL = ["guest", "reporter", "developer", "maintainer", "owner", "outsider", "granted", "admin"]
SEES = {"guest", "reporter", "developer", "maintainer", "owner", "granted", "admin"}
DETAILS = SEES - {"guest"}
APPROVES = {"maintainer", "owner", "granted", "admin"}
CONFIGURES = {"maintainer", "owner", "admin"}


@pytest.fixture
def w(world):
    # "granted" holds one object permission on the project and no membership.
    grants.grant(world.users["owner"], world.users["granted"], Action.APPROVE, world.project)
    return world


def api_as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def expected(persona: str, allowed: set[str]) -> int | None:
    """None = allowed; else the refusal code (invisible objects are 404)."""
    if persona not in SEES:
        return 404
    return None if persona in allowed else 403


# --- Lists and details -------------------------------------------------------

@pytest.mark.parametrize("persona", ALL)
def test_project_list_shows_only_visible_projects_and_config_to_reporters_up(w, persona):
    body = api_as(w.users[persona]).get("/api/projects/").json()
    names = {p["name"] for p in body["results"]}
    want = ({"website"} if persona in SEES else set()) | ({"billing"} if persona in {"outsider", "admin"} else set())
    assert names == want
    assert body["count"] == len(want)
    for project in body["results"]:
        if project["name"] == "website":
            assert ("repo_url" in project) is (persona in DETAILS)
            assert {"name", "team", "environment"} <= set(project)


@pytest.mark.parametrize("persona", ALL)
def test_project_detail_is_404_for_who_cannot_see_it(w, persona):
    response = api_as(w.users[persona]).get(f"/api/projects/{w.project.pk}/")
    assert response.status_code == (200 if persona in SEES else 404)
    if persona == "guest":
        assert set(response.json()) == {"id", "name", "slug", "team", "environment", "is_active"}


@pytest.mark.parametrize("persona", ALL)
def test_ticket_list_shows_only_visible_tickets(w, persona):
    author = w.users["developer"]
    helpers.make_ticket(w.project, author)
    helpers.make_ticket(w.project, author, status=S.APPROVED)
    helpers.make_ticket(w.other_project, w.users["outsider"])
    body = api_as(w.users[persona]).get("/api/tickets/").json()
    projects = [t["project"] for t in body["results"]]
    want = (2 if persona in SEES else 0) + (1 if persona in {"outsider", "admin"} else 0)
    assert body["count"] == len(projects) == want
    assert all(p == w.project.pk for p in projects) or persona in {"outsider", "admin"}
    if persona == "outsider":
        assert set(projects) == {w.other_project.pk}


@pytest.mark.parametrize("persona", ALL)
def test_ticket_detail_hides_hosts_and_run_details_from_guests(w, persona):
    ticket = helpers.make_ticket(w.project, w.users["developer"], status=S.FAILED)
    run = DeployRun.objects.create(ticket=ticket, number=1, status=DeployRun.Status.FAILED, error="boom on host")
    RunHost.objects.create(run=run, host=w.project.hosts.first(), status=RunHost.Status.FAILED, error="disk full")
    response = api_as(w.users[persona]).get(f"/api/tickets/{ticket.pk}/")
    if persona not in SEES:
        assert response.status_code == 404
        return
    body = response.json()
    assert body["status"] == S.FAILED and body["events"][0]["action"] == "submit"
    details = persona in DETAILS
    assert (body["hosts"] is not None) is details
    assert ("host_results" in body["latest_run"]) is details
    assert ("disk full" in response.content.decode()) is details


def test_ticket_list_filters_and_newest_first(w):
    dev, maint = w.users["developer"], w.users["maintainer"]
    old = helpers.make_ticket(w.project, dev, title="fix login", ref="master")
    new = helpers.make_ticket(w.project, maint, status=S.APPROVED, title="ship search", ref="release-2")
    client = api_as(w.users["admin"])

    def ids(query: str) -> list[int]:
        return [t["id"] for t in client.get(f"/api/tickets/?{query}").json()["results"]]

    assert ids(f"project={w.project.pk}") == [new.pk, old.pk]
    assert ids("status=approved") == [new.pk]
    assert ids("author=developer") == [old.pk]
    assert ids("q=LOGIN") == [old.pk]
    assert ids("q=release-2") == [new.pk]
    assert ids("environment=production")[:2] == [new.pk, old.pk]
    assert ids("environment=test") == []
    assert client.get("/api/tickets/?status=bogus").json() == {"status": ["Unknown status 'bogus'."]}
    assert "project" in client.get("/api/tickets/?project=x").json()


# --- Workflow endpoints ------------------------------------------------------

def _refused_without_side_effects(w, persona, ticket, url, data, allowed, capture, ok_code=200):
    before = ticket.status
    with capture(execute=False) as callbacks:
        response = api_as(w.users[persona]).post(url, data, format="json")
    code = expected(persona, allowed)
    ticket.refresh_from_db()
    if code is None:
        assert response.status_code == ok_code, response.content
        return response, callbacks
    assert response.status_code == code, response.content
    assert ticket.status == before
    assert callbacks == []
    assert ticket.runs.count() == 0
    return response, callbacks


@pytest.mark.parametrize("persona", ALL)
def test_approve(w, persona, django_capture_on_commit_callbacks):
    ticket = helpers.make_ticket(w.project, w.users["developer"])
    response, _ = _refused_without_side_effects(
        w, persona, ticket, f"/api/tickets/{ticket.pk}/approve/", {"version": ticket.version}, APPROVES,
        django_capture_on_commit_callbacks,
    )
    if persona in APPROVES:
        assert ticket.status == S.APPROVED and response.json()["status"] == S.APPROVED
    elif response.status_code == 403:
        assert response.json()["detail"]


@pytest.mark.parametrize("persona", ALL)
def test_reject(w, persona, django_capture_on_commit_callbacks):
    ticket = helpers.make_ticket(w.project, w.users["developer"])
    _refused_without_side_effects(
        w, persona, ticket, f"/api/tickets/{ticket.pk}/reject/", {"reason": "not today"}, APPROVES,
        django_capture_on_commit_callbacks,
    )
    if persona in APPROVES:
        assert ticket.status == S.REJECTED and ticket.reject_reason == "not today"


@pytest.mark.parametrize("persona", ALL)
def test_cancel(w, persona, django_capture_on_commit_callbacks):
    ticket = helpers.make_ticket(w.project, w.users["developer"])
    allowed = APPROVES | {"developer"}  # own ticket, or an approver
    _refused_without_side_effects(
        w, persona, ticket, f"/api/tickets/{ticket.pk}/cancel/", {}, allowed, django_capture_on_commit_callbacks
    )
    if persona in allowed:
        assert ticket.status == S.CANCELLED


@pytest.mark.parametrize("persona", ALL)
def test_deploy_queues_one_run_for_the_right_roles_only(w, persona, django_capture_on_commit_callbacks):
    ticket = helpers.make_ticket(w.project, w.users["developer"], status=S.APPROVED)
    allowed = {"developer", "maintainer", "owner", "admin"}  # own ticket, or deploy-any
    _, callbacks = _refused_without_side_effects(
        w, persona, ticket, f"/api/tickets/{ticket.pk}/deploy/", {}, allowed, django_capture_on_commit_callbacks,
        ok_code=202,
    )
    if persona in allowed:
        assert ticket.status == S.QUEUED
        assert len(callbacks) == 1
        assert ticket.runs.get().status == DeployRun.Status.QUEUED


@pytest.mark.parametrize("persona", ALL)
def test_rollback_opens_a_rollback_ticket_for_maintainers(w, persona, django_capture_on_commit_callbacks):
    ticket = helpers.make_ticket(w.project, w.users["developer"], status=S.SUCCEEDED)
    run = DeployRun.objects.create(ticket=ticket, number=1, status=DeployRun.Status.SUCCEEDED)
    RunHost.objects.create(run=run, host=w.project.hosts.first(), status=RunHost.Status.DONE)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_as(w.users[persona]).post(f"/api/tickets/{ticket.pk}/rollback/", {}, format="json")
    assert callbacks == []
    code = expected(persona, CONFIGURES)
    if code is None:
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["kind"] == Ticket.Kind.ROLLBACK and body["rollback_of"] == ticket.pk
        assert body["status"] == S.APPROVED  # production: rollbacks need no approval by default
    else:
        assert response.status_code == code
        assert not Ticket.objects.filter(rollback_of=ticket).exists()


def test_self_approval_is_refused_in_production_with_the_reason(w):
    ticket = helpers.make_ticket(w.project, w.users["maintainer"])
    response = api_as(w.users["maintainer"]).post(f"/api/tickets/{ticket.pk}/approve/")
    assert response.status_code == 403
    assert "someone else must approve" in response.json()["detail"]
    ticket.refresh_from_db()
    assert ticket.status == S.PENDING


def test_wrong_state_is_409_and_missing_reason_is_400(w):
    client = api_as(w.users["maintainer"])
    approved = helpers.make_ticket(w.project, w.users["developer"], status=S.APPROVED)
    response = client.post(f"/api/tickets/{approved.pk}/approve/", {"version": approved.version}, format="json")
    assert response.status_code == 409 and "approved" in response.json()["detail"]
    pending = helpers.make_ticket(w.project, w.users["developer"])
    assert client.post(f"/api/tickets/{pending.pk}/reject/", {}, format="json").json() == {
        "reason": ["This field is required."]
    }
    pending.refresh_from_db()
    assert pending.status == S.PENDING


def test_second_deploy_of_a_busy_project_is_409(w, django_capture_on_commit_callbacks):
    helpers.make_ticket(w.project, w.users["developer"], status=S.QUEUED)
    ticket = helpers.make_ticket(w.project, w.users["developer"], status=S.APPROVED)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_as(w.users["maintainer"]).post(f"/api/tickets/{ticket.pk}/deploy/")
    assert response.status_code == 409 and "deploy again" in response.json()["detail"]
    assert callbacks == []


def test_rollback_of_unknown_release_is_400(w):
    ticket = helpers.make_ticket(w.project, w.users["developer"], status=S.SUCCEEDED)
    run = DeployRun.objects.create(ticket=ticket, number=1, status=DeployRun.Status.SUCCEEDED)
    host = w.project.hosts.first()
    RunHost.objects.create(run=run, host=host, status=RunHost.Status.DONE, release="20250101-000000-1")
    Release.objects.create(project=w.project, host=host, name="20250101-000000-1", commit=ticket.commit,
                           ticket=ticket, run=run, is_live=True)
    client = api_as(w.users["maintainer"])
    response = client.post(f"/api/tickets/{ticket.pk}/rollback/", {"release": "../../etc"}, format="json")
    # The workflow refuses it; the API names the field.
    assert response.status_code == 400 and list(response.json()) == ["release"]
    assert "not kept" in response.json()["release"][0]
    assert not Ticket.objects.filter(rollback_of=ticket).exists()
    kept = client.post(f"/api/tickets/{ticket.pk}/rollback/", {"release": "20250101-000000-1"}, format="json")
    assert kept.status_code == 201 and kept.json()["rollback_release"] == "20250101-000000-1"


def test_rollback_of_a_ticket_that_switched_nothing_is_400_not_about_release(w):
    ticket = helpers.make_ticket(w.project, w.users["developer"], status=S.FAILED)
    response = api_as(w.users["maintainer"]).post(f"/api/tickets/{ticket.pk}/rollback/", {}, format="json")
    assert response.status_code == 400 and "never switched" in response.json()["detail"]


@pytest.mark.parametrize("persona", ALL)
def test_edit_only_by_the_author(w, persona):
    ticket = helpers.make_ticket(w.project, w.users["developer"], status=S.REJECTED, title="old")
    response = api_as(w.users[persona]).post(f"/api/tickets/{ticket.pk}/edit/", {"title": "new"}, format="json")
    ticket.refresh_from_db()
    if persona == "developer":
        assert response.status_code == 200, response.content
        # Editing a rejected ticket resubmits it; the unchanged ref is not fetched again.
        assert ticket.title == "new" and ticket.status == S.PENDING and response.json()["status"] == S.PENDING
    else:
        assert response.status_code == (404 if persona not in SEES else 403)
        assert ticket.title == "old" and ticket.status == S.REJECTED


def test_edit_of_a_rollback_ticket_keeps_ref_commit_and_hosts(w):
    rollback = helpers.make_ticket(w.project, w.users["developer"], status=S.PENDING, kind=Ticket.Kind.ROLLBACK)
    client = api_as(w.users["developer"])
    response = client.post(f"/api/tickets/{rollback.pk}/edit/", {"title": "x", "ref": "other"}, format="json")
    assert response.status_code == 400 and list(response.json()) == ["ref"]
    rollback.refresh_from_db()
    assert rollback.title != "x" and rollback.ref == "master"


# --- Ticket creation (input checks that need no repository) ------------------

@pytest.mark.parametrize(
    ("persona", "code"), [("guest", 403), ("reporter", 403), ("granted", 403), ("outsider", 400)]
)
def test_submit_needs_submit_permission(w, persona, code):
    data = {"project": w.project.pk, "title": "ship", "ref": "master"}
    response = api_as(w.users[persona]).post("/api/tickets/", data, format="json")
    assert response.status_code == code
    if code == 400:  # an invisible project looks exactly like an unknown one
        assert "project" in response.json()
    assert not Ticket.objects.exists()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"project": 999999, "title": "x", "ref": "master"}, "project"),
        ({"title": "x", "ref": "master"}, "project"),
        ({"project": "P", "title": "x" * 201, "ref": "master"}, "title"),  # an empty title defaults (issue 10)
        ({"project": "P", "title": "x"}, "ref"),
        ({"project": "P", "title": "x", "ref": "master", "commit": "a" * 41}, "commit"),
    ],
)
def test_submit_invalid_input_is_400_naming_the_field(w, data, field):
    if data.get("project") == "P":
        data = {**data, "project": w.project.pk}
    response = api_as(w.users["developer"]).post("/api/tickets/", data, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not Ticket.objects.exists()


def test_submit_with_another_projects_host_is_400(w):
    foreign = w.other_project.hosts.first()
    data = {"project": w.project.pk, "title": "x", "ref": "master", "hosts": [foreign.pk]}
    response = api_as(w.users["developer"]).post("/api/tickets/", data, format="json")
    assert response.status_code == 400 and "hosts" in response.json()
    assert foreign.address not in response.content.decode()


# --- Log ---------------------------------------------------------------------

@pytest.mark.parametrize("persona", ALL)
def test_log_needs_view_details_and_pages_by_seq(w, persona):
    ticket = helpers.make_ticket(w.project, w.users["developer"], status=S.FAILED)
    first = DeployRun.objects.create(ticket=ticket, number=1, status=DeployRun.Status.FAILED)
    second = DeployRun.objects.create(ticket=ticket, number=2, status=DeployRun.Status.FAILED)
    for run in (first, second):
        for seq in range(1, 4):
            LogLine.objects.create(run=run, seq=seq, host="10.0.0.1", stage="checkout", stream="stdout",
                                   text=f"run {run.number} line {seq}")
    client = api_as(w.users[persona])
    response = client.get(f"/api/tickets/{ticket.pk}/log/?after=1")
    code = 200 if persona in DETAILS else (403 if persona in SEES else 404)
    assert response.status_code == code
    if code != 200:
        return
    body = response.json()
    assert [line["seq"] for line in body["lines"]] == [2, 3]
    assert body["lines"][0]["text"] == "run 2 line 2" and body["run"]["number"] == 2
    assert set(body["lines"][0]) == {"seq", "time", "host", "stage", "stream", "text"}
    assert body["next_after"] == 3 and body["status"] == S.FAILED and body["more"] is False
    assert client.get(f"/api/tickets/{ticket.pk}/log/?after=3").json()["lines"] == []
    assert client.get(f"/api/tickets/{ticket.pk}/log/?run=1").json()["lines"][0]["text"] == "run 1 line 1"
    assert client.get(f"/api/tickets/{ticket.pk}/log/?run=7").status_code == 404
    assert "after" in client.get(f"/api/tickets/{ticket.pk}/log/?after=-1").json()


# --- Project repository endpoints refuse before touching git ------------------

@pytest.mark.parametrize("persona", ALL)
def test_repository_and_check_endpoints_refuse_the_wrong_roles(w, persona):
    client = api_as(w.users[persona])
    base = f"/api/projects/{w.project.pk}"
    if persona not in DETAILS:
        assert client.get(f"{base}/refs/").status_code == (403 if persona in SEES else 404)
        assert client.get(f"{base}/commits/?branch=master").status_code == (403 if persona in SEES else 404)
    if persona not in CONFIGURES:
        assert client.post(f"{base}/check/").status_code == (403 if persona in SEES else 404)
