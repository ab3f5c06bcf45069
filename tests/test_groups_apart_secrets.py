"""Project secrets: set by those who configure the project, encrypted at rest,
never shown again (pages and API show names at most), handed to the worker
by ``secret_env``."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from accounts import grants
from accounts.permissions import Action
from projects.models import ProjectSecret
from projects.secrets import secret_env

from . import helpers

CANARY = "s3cr3t-canary-value-7f1e"


def url(project, name: str = "projects_project_secrets") -> str:
    return reverse(f"admin:{name}", args=[project.pk])


def _set(client, user, project, name: str = "NPM_TOKEN", value: str = CANARY):
    client.force_login(user)
    return client.post(url(project), {"name": name, "value": value}, follow=True)


def _all_pages(client, user, project) -> str:
    client.force_login(user)
    pages = [url(project), reverse("admin:projects_project_change", args=[project.pk])]
    return "".join(client.get(page).content.decode() for page in pages)


def test_a_maintainer_sets_a_secret_that_is_stored_encrypted_and_never_shown(client, world):
    response = _set(client, world.users["maintainer"], world.project)
    body = response.content.decode()
    assert "Secret NPM_TOKEN set." in body and CANARY not in body
    secret = ProjectSecret.objects.get(project=world.project, name="NPM_TOKEN")
    assert CANARY not in secret.value_encrypted and secret.decrypted() == CANARY
    assert CANARY not in _all_pages(client, world.users["maintainer"], world.project)
    assert secret.value_encrypted not in _all_pages(client, world.users["maintainer"], world.project)


def test_setting_an_existing_name_changes_its_value(client, world):
    _set(client, world.users["maintainer"], world.project, value="first")
    response = _set(client, world.users["owner"], world.project, value="second")
    assert "Secret NPM_TOKEN changed." in response.content.decode()
    assert secret_env(world.project) == {"NPM_TOKEN": "second"}


@pytest.mark.parametrize("persona", ["reporter", "developer"])
def test_reporters_and_developers_see_names_but_cannot_change_secrets(client, world, persona):
    _set(client, world.users["maintainer"], world.project)
    user = world.users[persona]
    body = _all_pages(client, user, world.project)
    assert "NPM_TOKEN" in body and CANARY not in body
    assert 'id="secret-form"' not in body
    assert _set(client, user, world.project, value="hijacked").status_code == 403
    client.post(url(world.project, "projects_project_secret_delete"), {"name": "NPM_TOKEN"})
    assert secret_env(world.project) == {"NPM_TOKEN": CANARY}


@pytest.mark.parametrize("persona", ["guest", "outsider"])
def test_guests_and_outsiders_see_not_even_the_names(client, world, persona):
    _set(client, world.users["maintainer"], world.project)
    client.force_login(world.users[persona])
    response = client.get(url(world.project))
    assert response.status_code in (403, 404)
    assert "NPM_TOKEN" not in response.content.decode()
    assert _set(client, world.users[persona], world.project, name="EVIL").status_code in (403, 404)
    assert not ProjectSecret.objects.filter(name="EVIL").exists()


def test_a_configure_grant_may_set_secrets(client, world):
    grants.grant(world.users["owner"], world.users["granted"], Action.CONFIGURE, world.project)
    assert _set(client, world.users["granted"], world.project).status_code == 200
    assert "NPM_TOKEN" in secret_env(world.project)


def test_a_maintainer_deletes_a_secret(client, world):
    _set(client, world.users["maintainer"], world.project)
    response = client.post(url(world.project, "projects_project_secret_delete"), {"name": "NPM_TOKEN"}, follow=True)
    assert "Secret NPM_TOKEN deleted." in response.content.decode()
    assert secret_env(world.project) == {}


@pytest.mark.parametrize(
    "name,value,error",
    [
        ("npm_token", CANARY, "environment variable name"),
        ("1TOKEN", CANARY, "environment variable name"),
        ("MY-TOKEN", CANARY, "environment variable name"),
        ("WALLE_TOKEN", CANARY, "reserved"),
        ("TOKEN", CANARY + "\x00", "NUL"),
        ("TOKEN", "x" * 4095 + "é", "at most 4096 bytes"),
        ("TOKEN", "", "required"),
    ],
)
def test_bad_secrets_get_a_clear_error_and_change_nothing(client, world, name, value, error):
    response = _set(client, world.users["maintainer"], world.project, name=name, value=value)
    body = response.content.decode()
    assert error in body
    assert CANARY not in body  # not even echoed back into the form
    assert not ProjectSecret.objects.exists()


def test_a_value_of_exactly_4_kib_is_accepted(client, world):
    _set(client, world.users["maintainer"], world.project, value="x" * 4096)
    assert secret_env(world.project) == {"NPM_TOKEN": "x" * 4096}


def test_the_api_never_carries_a_secret(client, world):
    _set(client, world.users["maintainer"], world.project)
    secret = ProjectSecret.objects.get()
    api = APIClient()
    api.force_login(world.users["owner"])
    for path in ("/api/projects/", f"/api/projects/{world.project.pk}/", "/api/schema/"):
        body = api.get(path).content.decode()
        assert CANARY not in body and secret.value_encrypted not in body


def test_secret_env_returns_only_this_projects_secrets_decrypted(client, world):
    _set(client, world.users["maintainer"], world.project, "DB_PASSWORD", "one")
    _set(client, world.users["maintainer"], world.project, "API_KEY", "two")
    _set(client, world.users["outsider"], world.other_project, "DB_PASSWORD", "theirs")
    assert secret_env(world.project) == {"API_KEY": "two", "DB_PASSWORD": "one"}
    assert secret_env(world.other_project) == {"DB_PASSWORD": "theirs"}
    assert secret_env(helpers.make_project(world.team, name="bare", slug="bare")) == {}
