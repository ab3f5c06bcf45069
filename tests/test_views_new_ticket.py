"""The new-ticket page against a real repository on the SSH git server: refs
and commits come from git, and user input is resolved before anything is made."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from releases import workflow
from releases.models import RepositoryFetch, Ticket
from tests.deploy_fixtures import deploy_now, open_approved_ticket

# Repository fetches run on the worker; here it runs them inline (django-q2 sync mode).
pytestmark = [pytest.mark.sshd, pytest.mark.usefixtures("inline_worker")]

HOSTILE = ["main;touch${IFS}/tmp/pwned", "--upload-pack=x", "does-not-exist", "master~1", "../master", "-", ""]


def new_url(site, **params) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"project": site.project.pk, **params}.items())
    return f"{reverse('ticket_new')}?{query}"


def test_chooser_lists_branches_commits_and_preview(client, site):
    client.force_login(site.users["developer"])
    body = client.get(new_url(site)).content.decode()
    assert '<option value="master"' in body
    body = client.get(new_url(site, ref="master")).content.decode()
    sha = site.commits["v1"]
    assert sha[:7] in body and 'id="preview"' in body and "Nothing is live yet" in body
    assert f'value="{sha}"' in body  # the tip is preselected in the submit form


def test_refresh_asks_the_worker_to_fetch_at_most_every_so_often(client, site):
    client.force_login(site.users["developer"])
    assert "as fetched" in client.get(new_url(site, ref="master")).content.decode()  # the first look fetched
    sha = site.push("v2", "second")
    assert sha[:7] not in client.get(new_url(site, ref="master")).content.decode()  # the mirror is stale

    def refresh() -> str:
        data = {"project": site.project.pk, "ref": "master"}
        return client.post(reverse("ticket_new_refresh"), data, follow=True).content.decode()

    body = refresh()  # moments after the first fetch: not again
    assert sha[:7] not in body and "moments ago" in body
    RepositoryFetch.objects.filter(project=site.project).update(requested_at=timezone.now() - timedelta(minutes=1))
    assert sha[:7] in refresh()


def post(client, site, ref: str, commit: str = ""):
    hosts = [h.pk for h in site.host_records]
    return client.post(reverse("ticket_new"), {
        "project": site.project.pk, "ref": ref, "commit": commit, "title": "ship", "hosts": hosts,
    })


@pytest.mark.parametrize("ref", HOSTILE)
def test_bad_or_hostile_ref_is_a_form_error_and_creates_nothing(client, site, ref):
    client.force_login(site.users["developer"])
    response = post(client, site, ref)
    assert response.status_code == 200
    assert "The ticket was not created" in response.content.decode()
    assert not Ticket.objects.exists()


def test_commit_not_on_the_branch_is_refused(client, site):
    elsewhere = site.git_server.commit(site.repo, {"x.txt": "x"}, "on another branch", branch="other")
    client.force_login(site.users["developer"])
    client.get(new_url(site))  # the first look fetches: the commit is in the mirror, but not on master
    for commit in [elsewhere, "0" * 40, "zz", site.commits["v1"][:7] + ";id"]:
        response = post(client, site, "master", commit)
        assert "The ticket was not created" in response.content.decode()
    assert not Ticket.objects.exists()


def test_valid_post_submits_a_pending_ticket_with_the_resolved_commit(client, site):
    client.force_login(site.users["developer"])
    response = post(client, site, "master", site.commits["v1"])
    ticket = Ticket.objects.get()
    assert response["Location"] == reverse("ticket_detail", args=[ticket.pk])
    assert ticket.status == Ticket.Status.PENDING and ticket.commit == site.commits["v1"]
    assert set(ticket.hosts.all()) == set(site.host_records)


def test_reporter_cannot_submit(client, site):
    client.force_login(site.users["reporter"])
    response = post(client, site, "master", site.commits["v1"])
    assert response.status_code == 200 and not Ticket.objects.exists()


def test_choosing_a_commit_older_than_what_is_live_warns(client, site):
    site.push("v2", "second")
    run = deploy_now(site.users["developer"], open_approved_ticket(site, "v2"))
    assert run.status == run.Status.SUCCEEDED, run.error
    client.force_login(site.users["developer"])
    older = client.get(new_url(site, ref="master", commit=site.commits["v1"])).content.decode()
    assert 'id="behind-warning"' in older and "1 commit that this one lacks" in older
    newest = client.get(new_url(site, ref="master", commit=site.commits["v2"])).content.decode()
    assert 'id="behind-warning"' not in newest


def test_form_fetches_like_the_api(client, site):
    """The page resolves with repository.resolve_fresh: a commit pushed after
    the last fetch is found, and an empty commit is the server's tip."""
    client.force_login(site.users["developer"])
    client.get(new_url(site, ref="master"))  # the mirror now exists, at v1
    v2 = site.push("v2", "second")
    response = post(client, site, "master", v2)
    assert response.status_code == 302, response.content.decode()[-2000:]
    assert Ticket.objects.get().commit == v2
    v3 = site.push("v3", "third")
    post(client, site, "master", "")
    assert Ticket.objects.order_by("-pk").first().commit == v3


def edit(client, ticket, **changes):
    data = {"title": ticket.title, "description": ticket.description, "ref": ticket.ref,
            "commit": ticket.commit, "hosts": [h.pk for h in ticket.hosts.all()], **changes}
    return client.post(reverse("ticket_edit", args=[ticket.pk]), data)


def test_rejected_ticket_is_edited_to_another_commit_and_resubmitted(client, site):
    ticket = workflow.submit(site.users["developer"], site.project, title="ship", ref="master",
                             commit=site.commits["v1"])
    workflow.reject(site.users["owner"], ticket, "wrong commit")
    v2 = site.push("v2", "second")  # after the mirror's last fetch

    client.force_login(site.users["maintainer"])  # not the author
    assert edit(client, ticket, commit=v2).status_code == 403

    client.force_login(site.users["developer"])
    for bad in [{"ref": "nope"}, {"ref": "--upload-pack=x"}, {"commit": "0" * 40}, {"commit": "zz;id"}]:
        response = edit(client, ticket, **bad)
        assert response.status_code == 200 and 'class="errorlist' in response.content.decode(), bad
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.REJECTED and ticket.commit == site.commits["v1"]
    assert ticket.ref == "master" and ticket.events.count() == 2

    first = site.host_records[0]
    response = edit(client, ticket, commit=v2, hosts=[first.pk])
    assert response["Location"] == reverse("ticket_detail", args=[ticket.pk])
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.PENDING and ticket.commit == v2 and ticket.reject_reason == ""
    assert list(ticket.hosts.all()) == [first]
