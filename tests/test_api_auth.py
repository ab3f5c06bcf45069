"""API authentication by personal token, and secrets that must never appear
in any API response."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.models import ApiToken
from projects.keys import create_key
from releases.models import DeployRun, LogLine, Ticket

from . import helpers


def bearer(raw: str, keyword: str = "Bearer") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{keyword} {raw}")
    return client


def test_bearer_token_authenticates(world):
    _, raw = ApiToken.issue(world.users["developer"], "ci")
    response = bearer(raw).get("/api/projects/")
    assert response.status_code == 200
    assert [p["name"] for p in response.json()["results"]] == ["website"]
    assert ApiToken.objects.get().last_used_at is not None


def test_revoked_token_is_401(world):
    token, raw = ApiToken.issue(world.users["developer"], "ci")
    token.revoke()
    response = bearer(raw).get("/api/projects/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("header", ["Bearer walle_not-a-token", "Bearer", "Bearer a b"])
def test_bad_authorization_header_is_401(world, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert client.get("/api/projects/").status_code == 401


def test_token_of_inactive_user_is_401(world):
    user = world.users["developer"]
    _, raw = ApiToken.issue(user, "ci")
    user.is_active = False
    user.save()
    assert bearer(raw).get("/api/projects/").status_code == 401


@pytest.mark.parametrize("param", ["token", "access_token", "api_key", "key", "auth"])
def test_token_in_query_string_is_not_accepted(world, param):
    _, raw = ApiToken.issue(world.users["admin"], "ci")
    assert APIClient().get(f"/api/projects/?{param}={raw}").status_code == 401


def test_anonymous_is_401_everywhere(world):
    client = APIClient()
    for url in ("/api/", "/api/projects/", "/api/tickets/", "/api/schema/", "/api/docs/"):
        assert client.get(url).status_code in (401, 403), url


def test_session_post_without_csrf_token_is_refused(world):
    ticket = helpers.make_ticket(world.project, world.users["developer"])
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(world.users["maintainer"])
    assert client.post(f"/api/tickets/{ticket.pk}/approve/").status_code == 403
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.PENDING


def test_no_private_key_or_token_hash_in_any_response(world):
    key = create_key("canary")
    world.project.deploy_key = key
    world.project.save()
    token, raw = ApiToken.issue(world.users["admin"], "ci")
    ticket = helpers.make_ticket(world.project, world.users["developer"], status=Ticket.Status.FAILED)
    run = DeployRun.objects.create(ticket=ticket, number=1, status=DeployRun.Status.FAILED)
    LogLine.objects.create(run=run, seq=1, stage="checkout", stream="stdout", text="hello")
    client = bearer(raw)
    bodies = [
        client.get(url).content.decode()
        for url in (
            "/api/", "/api/projects/", f"/api/projects/{world.project.pk}/", "/api/tickets/",
            f"/api/tickets/{ticket.pk}/", f"/api/tickets/{ticket.pk}/log/", "/api/schema/", "/api/docs/",
        )
    ]
    detail = bodies[2]
    assert key.fingerprint in detail and key.public_key.strip() in detail
    private = key.private_key()
    for body in bodies:
        assert "PRIVATE KEY" not in body
        assert all(line not in body for line in private.splitlines()[1:-1])
        assert key.private_key_encrypted not in body
        assert token.key_hash not in body and raw not in body


def test_schema_and_offline_docs(world):
    client = APIClient()
    client.force_authenticate(world.users["reporter"])
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert "/api/tickets/{id}/approve/" in schema["paths"]
    assert "/api/tickets/{id}/log/" in schema["paths"]
    assert schema["components"]["securitySchemes"]["apiToken"]["scheme"] == "bearer"
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and docs["Content-Type"].startswith("text/html")
    page = docs.content.decode()
    assert "/api/projects/{id}/commits/" in page and "<script" not in page
