"""The walkthrough through the REST API with tokens alone, against the real
worker process, three real sshd+nginx hosts and a real git server."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.models import ApiToken
from releases.models import Ticket
from tests.deploy_fixtures import V1_TEXT, V2_TEXT, wait_for

pytestmark = [pytest.mark.sshd, pytest.mark.worker]

S = Ticket.Status


def token_client(user) -> APIClient:
    _, raw = ApiToken.issue(user, "story")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def follow_log(client: APIClient, ticket_id: int) -> list[dict]:
    """Poll /log/ with ?after= until the ticket ends; every line exactly once."""
    lines: list[dict] = []
    after = 0
    state: dict = {}

    def finished() -> bool:
        nonlocal after
        body = client.get(f"/api/tickets/{ticket_id}/log/?after={after}").json()
        assert all(line["seq"] > after for line in body["lines"])
        lines.extend(body["lines"])
        after = body["next_after"]
        state["status"] = body["status"]
        return body["status"] in (S.SUCCEEDED, S.FAILED, S.CANCELLED) and not body["more"]

    wait_for(finished, timeout=180, interval=0.5)
    assert state["status"] == S.SUCCEEDED, lines[-10:]
    seqs = [line["seq"] for line in lines]
    assert seqs == sorted(set(seqs)) and seqs == list(range(1, len(seqs) + 1))
    return lines


def ship(developer: APIClient, maintainer: APIClient, project_id: int, commit: str) -> int:
    created = developer.post(
        "/api/tickets/", {"project": project_id, "title": f"ship {commit[:7]}", "ref": "master", "commit": commit},
        format="json",
    )
    assert created.status_code == 201, created.content
    ticket = created.json()
    assert ticket["status"] == S.PENDING and ticket["commit"] == commit
    approved = maintainer.post(
        f"/api/tickets/{ticket['id']}/approve/", {"note": "lgtm", "version": ticket["version"]}, format="json"
    )
    assert approved.status_code == 200 and approved.json()["status"] == S.APPROVED
    deployed = developer.post(f"/api/tickets/{ticket['id']}/deploy/")
    assert deployed.status_code == 202, deployed.content
    lines = follow_log(developer, ticket["id"])
    assert {"checkout", "transfer", "switch"} <= {line["stage"] for line in lines}
    return ticket["id"]


def test_deploy_deploy_rollback_with_tokens_only(site, qcluster):
    developer = token_client(site.users["developer"])
    maintainer = token_client(site.users["maintainer"])
    project = site.project.pk

    first = ship(developer, maintainer, project, site.commits["v1"])
    assert all(V1_TEXT in page for page in site.pages())
    detail = developer.get(f"/api/tickets/{first}/").json()
    assert detail["status"] == S.SUCCEEDED
    assert {h["status"] for h in detail["latest_run"]["host_results"]} == {"done"}

    site.push("v2", V2_TEXT)
    second = ship(developer, maintainer, project, site.commits["v2"])
    assert all(V2_TEXT in page for page in site.pages())

    rolled = maintainer.post(f"/api/tickets/{second}/rollback/", {}, format="json")
    assert rolled.status_code == 201, rolled.content
    rollback = rolled.json()
    assert rollback["kind"] == Ticket.Kind.ROLLBACK and rollback["rollback_of"] == second
    if rollback["status"] == S.PENDING:
        approval = {"version": rollback["version"]}
        assert maintainer.post(f"/api/tickets/{rollback['id']}/approve/", approval, format="json").status_code == 200
    assert maintainer.post(f"/api/tickets/{rollback['id']}/deploy/").status_code == 202
    follow_log(maintainer, rollback["id"])
    assert all(V1_TEXT in page for page in site.pages())
