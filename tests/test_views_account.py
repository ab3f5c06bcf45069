"""The profile page: personal API tokens, shown once, revocable by their owner only."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse

from accounts.models import ApiToken


def test_create_token_shows_raw_once_and_stores_only_a_hash(client, world):
    client.force_login(world.users["developer"])
    response = client.post(reverse("profile"), {"name": "ci"}, follow=True)
    token = ApiToken.objects.get(user=world.users["developer"])
    body = response.content.decode()
    raw = body.split('id="raw-token">')[1].split("<")[0]
    assert raw.startswith(ApiToken.PREFIX) and ApiToken.lookup(raw) == token
    assert raw not in token.key_hash and token.hint in body
    again = client.get(reverse("profile")).content.decode()
    assert raw not in again and "ci" in again


def test_token_list_shows_only_my_tokens(client, world):
    ApiToken.issue(world.users["maintainer"], "theirs")
    ApiToken.issue(world.users["developer"], "mine")
    client.force_login(world.users["developer"])
    body = client.get(reverse("profile")).content.decode()
    assert "mine" in body and "theirs" not in body


def test_revoke_own_token(client, world):
    token, raw = ApiToken.issue(world.users["developer"], "ci")
    client.force_login(world.users["developer"])
    response = client.post(reverse("token_revoke", args=[token.pk]))
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None and ApiToken.lookup(raw) is None


def test_cannot_revoke_someone_elses_token(client, world):
    token, raw = ApiToken.issue(world.users["maintainer"], "theirs")
    client.force_login(world.users["admin"])  # not even a platform admin, from this page
    assert client.post(reverse("token_revoke", args=[token.pk])).status_code == 404
    assert ApiToken.lookup(raw) == token


def test_token_pages_need_login_and_csrf(world):
    anonymous = Client()
    assert anonymous.get(reverse("profile")).status_code == 302
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(world.users["developer"])
    assert strict.post(reverse("profile"), {"name": "ci"}).status_code == 403
    assert not ApiToken.objects.exists()
