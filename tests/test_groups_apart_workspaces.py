"""A project's workspace lies inside WALLE_WORKSPACE_ROOT (never Walle's code
or data dir), and each path error on the project form is shown once."""

from __future__ import annotations

import html
import os
import posixpath

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.urls import reverse

from projects.models import Project

from .test_admin_permissions import _project_form


def change_url(project) -> str:
    return reverse("admin:projects_project_change", args=[project.pk])


def _post(client, world, **changes):
    client.force_login(world.users["maintainer"])
    return client.post(change_url(world.project), _project_form(world.project, **changes))


@pytest.mark.parametrize(
    "workspace",
    [
        "/srv/ws/website",
        str(settings.BASE_DIR),  # Walle's code
        str(settings.DATA_DIR),  # its database, secret key and key-encryption key
        str(settings.WALLE_WORKSPACE_ROOT),  # the root holds every project's workspace
        posixpath.dirname(str(settings.WALLE_WORKSPACE_ROOT)) + "/workspaces-evil",  # a prefix, not inside
    ],
)
def test_a_workspace_outside_the_workspace_root_is_refused(client, world, workspace):
    response = _post(client, world, workspace=workspace, description="moved")
    assert response.status_code == 200
    assert "must lie inside" in response.content.decode()
    world.project.refresh_from_db()
    assert world.project.workspace == "" and world.project.description != "moved"


def test_the_model_refuses_it_too(world):
    world.project.workspace = str(settings.DATA_DIR)
    with pytest.raises(ValidationError) as exc:
        world.project.full_clean()
    assert "workspace" in exc.value.message_dict


def test_a_workspace_inside_the_root_is_accepted(client, world):
    workspace = posixpath.join(str(settings.WALLE_WORKSPACE_ROOT), "website-custom")
    assert _post(client, world, workspace=workspace).status_code == 302
    world.project.refresh_from_db()
    assert world.project.effective_workspace == workspace


def test_the_default_workspace_stays_root_slash_slug(world):
    assert world.project.effective_workspace == os.path.join(str(settings.WALLE_WORKSPACE_ROOT), world.project.slug)


def test_a_symlink_under_the_root_that_leads_out_is_refused(client, world, settings, tmp_path):
    root = tmp_path / "workspaces"
    root.mkdir()
    (root / "escape").symlink_to(tmp_path)
    settings.WALLE_WORKSPACE_ROOT = root
    response = _post(client, world, workspace=str(root / "escape" / "ws"))
    assert response.status_code == 200
    assert "symbolic link" in response.content.decode()


def test_a_data_dir_inside_the_root_is_still_refused(client, world, settings, tmp_path):
    settings.WALLE_WORKSPACE_ROOT = tmp_path
    settings.DATA_DIR = tmp_path / "data"
    response = _post(client, world, workspace=str(tmp_path))  # not strictly inside
    assert response.status_code == 200
    response = _post(client, world, workspace=str(tmp_path / "data"))
    assert "must not contain Walle" in response.content.decode()
    world.project.refresh_from_db()
    assert world.project.workspace == ""


def test_two_projects_still_may_not_share_a_workspace(client, world):
    other = posixpath.join(str(settings.WALLE_WORKSPACE_ROOT), world.other_project.slug)
    response = _post(client, world, workspace=other)
    assert response.status_code == 200
    assert "another project" in response.content.decode()


# Item 11: each path error once.


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("webroot", "relative/x", "webroot must be an absolute path"),
        ("webroot", "/", "sits directly under"),
        ("webroot", "/srv", "sits directly under"),
        ("release_library", "/data/../etc", "must not contain &#x27;..&#x27;"),
        ("release_library", "relative", "must be an absolute path"),
        ("workspace", "relative/x", "must be an absolute path"),
        ("workspace", "/", "filesystem root"),
    ],
)
def test_each_path_error_is_shown_once(client, world, field, value, message):
    response = _post(client, world, **{field: value})
    assert response.status_code == 200
    body = response.content.decode()
    assert body.count(message) == 1, html.unescape(body[body.find(message) - 200:body.rfind(message) + 200])
    assert 'class="errorlist nonfield"' not in body


def test_a_layout_error_between_two_valid_paths_is_still_reported(client, world):
    response = _post(client, world, webroot="/data/releases/website/current")  # inside the release library
    assert response.status_code == 200
    assert response.content.decode().count("webroot must not be the release library or inside it") == 1
    assert Project.objects.get(pk=world.project.pk).webroot == "/data/nginx/website"
