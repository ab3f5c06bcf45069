"""Who may see and change a project's webhook in the admin (Maintainers of
that project), and who may read its deliveries (those who see its details)."""

from __future__ import annotations

import pytest

from webhooks import config
from webhooks.models import ProjectWebhook, Vendor, WebhookDelivery


@pytest.fixture
def webhook(world) -> tuple[ProjectWebhook, str]:
    hook = ProjectWebhook(project=world.project, branch="master")
    return hook, config.save_settings(world.users["maintainer"], hook)


def client_for(client, user):
    client.force_login(user)
    return client


def test_only_maintainers_of_the_project_open_or_regenerate_its_webhook(client, world, webhook):
    hook, secret = webhook
    change = f"/admin/webhooks/projectwebhook/{hook.pk}/change/"
    regenerate = f"/admin/webhooks/projectwebhook/{hook.pk}/regenerate/"
    assert client_for(client, world.users["developer"]).get("/admin/webhooks/projectwebhook/").status_code == 403
    for name in ("developer", "outsider"):
        client_for(client, world.users[name])
        assert client.get(change).status_code in (302, 403), name
        assert client.post(regenerate).status_code in (403, 404), name
    hook.refresh_from_db()
    assert hook.secret() == secret
    page = client_for(client, world.users["maintainer"]).get(change)
    assert page.status_code == 200 and hook.hook_id in page.content.decode()
    assert secret not in page.content.decode()


def test_the_add_form_offers_only_projects_the_user_configures_without_a_webhook(client, world):
    form = client_for(client, world.users["outsider"]).get("/admin/webhooks/projectwebhook/add/").content.decode()
    assert world.other_project.name in form and world.project.name not in form
    ProjectWebhook.objects.create(project=world.other_project)
    form = client.get("/admin/webhooks/projectwebhook/add/").content.decode()
    assert world.other_project.name not in form


def test_a_branch_is_refused_for_a_project_that_deploys_tags(client, world):
    world.project.repo_mode = "tag"
    world.project.save()
    response = client_for(client, world.users["maintainer"]).post(
        "/admin/webhooks/projectwebhook/add/", {"project": world.project.pk, "branch": "master", "enabled": "on"}
    )
    assert response.status_code == 200 and "deploys tags" in response.content.decode()
    assert not ProjectWebhook.objects.exists()


def test_deliveries_are_listed_to_those_who_see_the_projects_details(client, world):
    WebhookDelivery.objects.create(project=world.project, vendor=Vendor.GITHUB, event="push", delivery_id="abc-123",
                                   body_sha256="0" * 64, ref="feature", outcome=WebhookDelivery.Outcome.IGNORED)
    listing = "/admin/webhooks/webhookdelivery/"
    assert "feature" in client_for(client, world.users["reporter"]).get(listing).content.decode()
    assert "feature" not in client_for(client, world.users["guest"]).get(listing).content.decode()
    assert "feature" not in client_for(client, world.users["outsider"]).get(listing).content.decode()


def test_the_project_page_links_its_maintainers_to_the_projects_webhook(client, world):
    project_page = f"/admin/projects/project/{world.project.pk}/change/"
    body = client_for(client, world.users["maintainer"]).get(project_page).content.decode()
    assert f'/admin/webhooks/projectwebhook/add/?project={world.project.pk}"' in body
    add_form = client.get(f"/admin/webhooks/projectwebhook/add/?project={world.project.pk}").content.decode()
    assert f'<option value="{world.project.pk}" selected>' in add_form
    hook = ProjectWebhook(project=world.project, branch="master")
    config.save_settings(world.users["maintainer"], hook)
    body = client.get(project_page).content.decode()
    assert f"/admin/webhooks/projectwebhook/{hook.pk}/change/" in body
    developer_view = client_for(client, world.users["developer"]).get(project_page).content.decode()
    assert "project-webhook" not in developer_view
