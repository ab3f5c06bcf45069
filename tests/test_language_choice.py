"""Page language: the browser's by default; a person's choice is switchable
on every page and remembered on their account, so it follows them to a new
browser."""

from __future__ import annotations

import re

from django.test import Client

from accounts.models import UserPreference
from tests.helpers import PASSWORD


def _lang(response) -> str:
    return re.search(r'<html lang="([^"]+)"', response.content.decode()).group(1)


def test_the_browsers_language_is_used_until_a_person_chooses(client):
    assert _lang(client.get("/login/", HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")) == "zh-hans"
    assert _lang(client.get("/login/", HTTP_ACCEPT_LANGUAGE="en-US")) == "en"


def test_a_choice_is_kept_on_the_account_and_follows_to_a_new_browser(client, world):
    developer = world.users["developer"]
    client.force_login(developer)
    response = client.post("/language/", {"language": "zh-hans", "next": "/tickets/"})
    assert response.status_code == 302 and response["Location"] == "/tickets/"
    assert UserPreference.objects.get(user=developer).language == "zh-hans"
    assert _lang(client.get("/tickets/", HTTP_ACCEPT_LANGUAGE="en")) == "zh-hans"
    elsewhere = Client()  # another browser: no cookie, an English Accept-Language
    elsewhere.post("/login/", {"username": developer.username, "password": PASSWORD})
    assert _lang(elsewhere.get("/", HTTP_ACCEPT_LANGUAGE="en")) == "zh-hans"
    assert "language-switch" in elsewhere.get("/admin/").content.decode()  # switchable there too


def test_choosing_the_browsers_language_again_forgets_the_choice(client, world):
    client.force_login(world.users["developer"])
    client.post("/language/", {"language": "zh-hans", "next": "/"})
    client.post("/language/", {"language": "", "next": "/"})
    assert UserPreference.objects.get(user=world.users["developer"]).language == ""
    assert _lang(client.get("/", HTTP_ACCEPT_LANGUAGE="en")) == "en"


def test_an_unknown_language_or_a_foreign_next_changes_nothing(client, world):
    client.force_login(world.users["developer"])
    response = client.post("/language/", {"language": "xx-evil", "next": "https://evil.example/"})
    assert response.status_code == 302 and "evil.example" not in response["Location"]
    assert not UserPreference.objects.filter(user=world.users["developer"]).exists()
    assert client.get("/language/").status_code == 405
