"""The audit page, its CSV export and /api/audit/: one visibility rule, one set
of filters, bad filters refused, no query per row."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import grants
from audit import export
from audit.models import AuditEntry, Kind, Origin

from . import helpers


@pytest.fixture
def entries(world):
    """One entry in each scope: the web group's project, the other group's
    project, the web group itself, and the platform (an environment)."""
    mine = helpers.make_ticket(world.project, world.users["developer"], title="web release")
    theirs = helpers.make_ticket(world.other_project, world.users["outsider"], title="billing release")
    world.team.description = "web people"
    world.team.save()
    env = helpers.environment("test")
    env.allow_self_approval = not env.allow_self_approval
    env.save()
    return {
        "project": AuditEntry.objects.get(kind=Kind.TICKET, object_id=str(mine.pk)),
        "other": AuditEntry.objects.get(kind=Kind.TICKET, object_id=str(theirs.pk)),
        "group": AuditEntry.objects.get(kind=Kind.GROUP, team_id=world.team.pk, action="changed"),
        "platform": AuditEntry.objects.get(kind=Kind.ENVIRONMENT, action="changed"),
    }


def page_ids(client, user, query: str = "") -> set[int]:
    client.force_login(user)
    response = client.get(f"/audit/{query}")
    assert response.status_code == 200
    return {e.pk for e in response.context["page"].object_list}


def csv_rows(client, user, query: str = "") -> list[list[str]]:
    client.force_login(user)
    response = client.get(f"/audit/export.csv{query}")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def api_ids(user, query: str = "") -> set[int]:
    response = api(user).get(f"/api/audit/{query}")
    assert response.status_code == 200, response.content
    return {e["id"] for e in response.json()["results"]}


@pytest.mark.parametrize("persona, sees", [
    ("admin", {"project", "other", "group", "platform"}),
    ("owner", {"project", "group"}),
    ("maintainer", {"project", "group"}),
    ("developer", set()),
    ("guest", set()),
    ("outsider", {"other"}),  # a Maintainer of the other group
])
def test_each_person_reads_the_entries_the_policy_allows_on_page_csv_and_api(world, entries, client, persona, sees):
    user = world.users[persona]
    wanted = {entries[name].pk for name in sees}
    unwanted = {e.pk for name, e in entries.items() if name not in sees}
    on_page = page_ids(client, user, "?since=2000-01-01")
    assert wanted <= on_page and not unwanted & on_page
    via_api = api_ids(user)
    assert wanted <= via_api and not unwanted & via_api
    exported = {(r[4], r[5], r[9]) for r in csv_rows(client, user)[1:]}
    for name, entry in entries.items():
        assert ((entry.kind, entry.action, entry.object_repr) in exported) == (name in sees)


def test_a_per_project_configure_grant_shows_that_projects_entries_only(world, entries, client):
    grants.grant(world.users["owner"], world.users["granted"], "configure", world.project)
    seen = page_ids(client, world.users["granted"])
    assert entries["project"].pk in seen
    assert not seen & {entries["other"].pk, entries["group"].pk, entries["platform"].pk}


def test_filters_by_project_actor_kind_and_time(world, entries, client):
    admin = world.users["admin"]
    assert page_ids(client, admin, f"?project={world.other_project.pk}") >= {entries["other"].pk}
    assert entries["project"].pk not in page_ids(client, admin, f"?project={world.other_project.pk}")
    assert entries["other"].pk in page_ids(client, admin, "?actor=OUTSIDER")
    assert entries["project"].pk not in page_ids(client, admin, "?actor=outsider")
    assert page_ids(client, admin, "?kind=environment") == {entries["platform"].pk}
    later = (timezone.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert page_ids(client, admin, f"?since={later}") == set()
    assert entries["platform"].pk in page_ids(client, admin, f"?until={later}")
    assert api_ids(admin, "?kind=environment") == {entries["platform"].pk}
    assert api_ids(admin, f"?project={world.project.pk}&kind=ticket") == {entries["project"].pk}
    rows = csv_rows(client, admin, "?kind=group")
    assert rows[0] == export.HEADER and {r[4] for r in rows[1:]} == {"group"}


def test_a_project_one_may_not_read_is_not_a_filter_choice(world, entries, client):
    client.force_login(world.users["maintainer"])
    response = client.get(f"/audit/?project={world.other_project.pk}")
    assert response.status_code == 200
    assert "project" in response.context["form"].errors and not response.context["page"].object_list
    assert api(world.users["maintainer"]).get(f"/api/audit/?project={world.other_project.pk}").status_code == 400


def test_bad_filters_are_refused_with_a_reason_and_show_nothing(world, entries, client):
    client.force_login(world.users["admin"])
    response = client.get("/audit/?kind=nonsense&since=yesterday")
    assert set(response.context["form"].errors) == {"kind", "since"}
    assert not response.context["page"].object_list
    assert "Select a valid choice" in response.content.decode()
    assert client.get("/audit/export.csv?since=2026-02-30").status_code == 400
    assert client.get("/audit/?page=two").status_code == 400
    bad = api(world.users["admin"]).get("/api/audit/?kind=nonsense")
    assert bad.status_code == 400 and "kind" in bad.json()
    unknown = api(world.users["admin"]).get("/api/audit/?status=approved&actor=x")
    assert unknown.status_code == 400 and unknown.json() == {"status": ["Unknown filter."]}
    backwards = api(world.users["admin"]).get("/api/audit/?since=2026-02-02&until=2026-02-01")
    assert backwards.status_code == 400 and "until" in backwards.json()


def test_the_api_shows_what_changed_with_who_and_from_where(world, client):
    client.force_login(world.users["maintainer"])
    client.post(f"/admin/projects/project/{world.project.pk}/secrets/", {"name": "TOKEN", "value": "v-123"},
                REMOTE_ADDR="198.51.100.7")
    item = api(world.users["maintainer"]).get("/api/audit/?kind=secret").json()["results"][0]
    assert item["actor"] == "maintainer" and item["origin"] == Origin.WEB
    assert item["source_address"] == "198.51.100.7" and item["project"] == world.project.pk
    assert item["changes"] == {
        "project": [None, str(world.project)], "name": [None, "TOKEN"], "value_encrypted": "changed",
    }
    assert "v-123" not in str(item)


def test_csv_cells_that_a_spreadsheet_would_run_are_defused(world, client):
    helpers.make_user("=cmd|calc")  # user names may start with these characters
    evil = helpers.make_user("@SUM(1+1)")
    client.force_login(evil)  # (not shown: he reads nothing; the admin exports)
    project = helpers.make_project(world.team, name="-2+3", slug="minus")
    project.description = "+HYPERLINK(x)"
    project.save()
    rows = csv_rows(client, world.users["admin"], f"?project={project.pk}")
    cells = [cell for row in rows[1:] for cell in row]
    assert "'-2+3" in cells
    assert any(cell.startswith("'description: ") or cell.startswith("description: ") for cell in cells)
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in cells)
    assert export.safe("=1+1") == "'=1+1" and export.safe("@x") == "'@x" and export.safe("a=b") == "a=b"


def test_the_page_reads_without_a_query_per_entry(world, client, django_assert_num_queries):
    client.force_login(world.users["maintainer"])

    def make(n: int) -> None:
        for i in range(n):
            helpers.make_ticket(world.project, world.users["developer"], title=f"t{i}")

    def count() -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/audit/?kind=ticket").status_code == 200
            assert api(world.users["maintainer"]).get("/api/audit/?kind=ticket").status_code == 200
        return len(ctx.captured_queries)

    make(5)
    few = count()
    make(45)
    assert AuditEntry.objects.filter(kind=Kind.TICKET).count() == 50
    with django_assert_num_queries(few):
        assert client.get("/audit/?kind=ticket").status_code == 200
        assert api(world.users["maintainer"]).get("/api/audit/?kind=ticket").status_code == 200


def test_the_nav_links_the_page_and_the_schema_lists_the_endpoint(world, client, tmp_path):
    client.force_login(world.users["developer"])
    assert 'href="/audit/"' in client.get("/").content.decode()
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--fail-on-warn", "--file", str(out))
    assert "/api/audit/:" in out.read_text()


def test_a_recorded_choice_label_reads_in_the_readers_language(world, client):
    """Entries record choice labels in the installation's language; a page
    read in Chinese shows them in Chinese, the API keeps what was recorded."""
    world.project.rollout_strategy = "canary"
    world.project.save()
    client.force_login(world.users["admin"])
    page = client.get(f"/audit/?project={world.project.pk}", HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    assert "先金丝雀，再分批" in page and "Canary, then batches" not in page
    assert "Canary, then batches" in client.get(f"/audit/?project={world.project.pk}",
                                                HTTP_ACCEPT_LANGUAGE="en").content.decode()
    item = api(world.users["admin"]).get(f"/api/audit/?project={world.project.pk}&kind=project").json()["results"][0]
    assert item["changes"]["rollout_strategy"] == ["All at once", "Canary, then batches"]
