"""One notion of group in the admin: users sit beside Walle's groups, with
their group roles; Django's permission groups appear nowhere."""

from __future__ import annotations

import re

from accounts.models import Membership, Role, Team


def _models_on_index(client) -> list[str]:
    return re.findall(r'class="model-(\w+)', client.get("/admin/").content.decode())


def test_users_and_groups_sit_together_and_django_groups_are_gone(client, world):
    client.force_login(world.users["admin"])
    index = client.get("/admin/").content.decode()
    accounts = index.split('class="app-accounts')[1].split("</table>")[0]
    assert "model-useraccount" in accounts and "model-team" in accounts
    assert "app-auth" not in index
    page = client.get(f"/admin/accounts/useraccount/{world.users['developer'].pk}/change/").content.decode()
    assert 'name="groups"' not in page and 'name="user_permissions"' not in page
    assert "groups and roles" in page.lower() and "web" in page  # the developer's Walle group


def test_a_platform_admin_adds_members_when_creating_a_group(client, world):
    client.force_login(world.users["admin"])
    form = {
        "name": "mobile", "description": "",
        "memberships-TOTAL_FORMS": "1", "memberships-INITIAL_FORMS": "0",
        "memberships-0-user": str(world.users["developer"].pk), "memberships-0-role": str(Role.MAINTAINER),
    }
    response = client.post("/admin/accounts/team/add/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    team = Team.objects.get(name="mobile")
    assert Membership.objects.get(team=team).role == Role.MAINTAINER


def test_only_those_who_may_release_locks_see_project_locks_and_nobody_else_sees_users(client, world):
    client.force_login(world.users["developer"])
    models = _models_on_index(client)
    assert "projectlock" not in models and "useraccount" not in models
    client.force_login(world.users["maintainer"])
    models = _models_on_index(client)
    assert "projectlock" in models and "useraccount" not in models
    assert client.get("/admin/accounts/useraccount/").status_code == 403


def test_a_user_changed_on_their_admin_page_is_in_the_audit_log(client, world):
    from audit.models import AuditEntry, Kind

    developer = world.users["developer"]
    client.force_login(world.users["admin"])
    page = f"/admin/accounts/useraccount/{developer.pk}/change/"
    form = {"username": developer.username, "first_name": "Dev", "last_name": "", "email": "dev@example.com",
            "is_active": "on", "is_superuser": "on", "last_login_0": "", "last_login_1": "",
            "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00",
            "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"}
    response = client.post(page, form)
    assert response.status_code == 302, response.content.decode()[:3000]
    entry = AuditEntry.objects.filter(kind=Kind.USER).latest("created_at")
    assert entry.changes["is_superuser"] == [False, True] and entry.actor_id == world.users["admin"].pk
