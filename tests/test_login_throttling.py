"""Repeated failed logins lock that user out from that address (django-axes)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from .helpers import PASSWORD


@pytest.fixture
def throttled(settings):
    settings.AXES_ENABLED = True


@pytest.mark.parametrize("url_name", ["login", "admin:login"])
def test_five_failures_lock_the_account_even_with_rotating_forwarded_for(client, world, throttled, url_name):
    url = reverse(url_name)
    for n in range(5):
        client.post(url, {"username": "developer", "password": f"wrong-{n}"}, HTTP_X_FORWARDED_FOR=f"10.1.1.{n}")
    response = client.post(url, {"username": "developer", "password": PASSWORD}, HTTP_X_FORWARDED_FOR="10.9.9.9")
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_a_locked_pair_does_not_lock_other_users(client, world, throttled):
    url = reverse("login")
    for n in range(5):
        client.post(url, {"username": "developer", "password": f"wrong-{n}"})
    response = client.post(url, {"username": "maintainer", "password": PASSWORD})
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(world.users["maintainer"].pk)


def test_a_success_before_the_limit_resets_the_count(client, world, throttled):
    url = reverse("login")
    for round_ in range(2):
        for n in range(4):
            client.post(url, {"username": "developer", "password": f"wrong-{round_}-{n}"})
        assert client.post(url, {"username": "developer", "password": PASSWORD}).status_code == 302
        client.logout()
