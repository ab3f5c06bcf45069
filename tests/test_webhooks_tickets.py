"""Pushes to a real repository on the SSH git server, announced by signed
deliveries over real HTTP, open tickets through the workflow: for the commit
the repository confirms, under the environment's approval rule, as the
Maintainer who configured the webhook while they still may."""

from __future__ import annotations

import pytest

from accounts.models import Membership
from projects.models import RepoMode
from releases.models import DeployRun, Ticket
from tests import helpers
from tests.deploy_fixtures import V2_TEXT, wait_for
from tests.test_webhooks_receive import ZERO, deliver, push_payload
from webhooks import config
from webhooks.models import ProjectWebhook, WebhookDelivery

pytestmark = [pytest.mark.sshd]
Outcome = WebhookDelivery.Outcome
S = Ticket.Status


def make_hook(site, **settings) -> tuple[ProjectWebhook, str]:
    webhook = ProjectWebhook(project=site.project, **settings)
    return webhook, config.save_settings(site.users["maintainer"], webhook)


@pytest.mark.usefixtures("inline_worker")
@pytest.mark.parametrize("vendor", ["github", "gitlab", "gitea"])
def test_a_push_opens_a_pending_ticket_for_the_pushed_commit_in_production(site, live_server, vendor):
    # deploy_at_once is asked for, but production needs approval: a webhook never bypasses it.
    webhook, secret = make_hook(site, branch="master", deploy_at_once=True)
    sha = site.push("v2", V2_TEXT)
    status, answer = deliver(live_server.url, webhook, vendor,
                             push_payload(vendor, "refs/heads/master", sha, pusher="alice"), secret)
    assert status == 202 and answer["outcome"] == Outcome.QUEUED, answer
    delivery = WebhookDelivery.objects.get(pk=answer["delivery"])
    assert delivery.outcome == Outcome.TICKET_OPENED, delivery.detail
    ticket = delivery.ticket
    assert (ticket.status, ticket.ref, ticket.commit) == (S.PENDING, "master", sha)
    assert ticket.author == site.users["maintainer"] and ticket.title == f"master {sha[:8]} (push by alice)"
    assert ticket.hosts.count() == 3 and not DeployRun.objects.exists()
    assert delivery.commit == sha and "waits for approval" in delivery.detail


@pytest.mark.usefixtures("inline_worker")
def test_a_payload_naming_a_commit_the_branch_does_not_point_at_opens_no_ticket(site, live_server):
    webhook, secret = make_hook(site, branch="master")
    old = site.commits["v1"]
    tip = site.push("v2", V2_TEXT)
    for claimed in (old, "f" * 40):
        _, answer = deliver(live_server.url, webhook, "github", push_payload("github", "refs/heads/master", claimed),
                            secret)
        delivery = WebhookDelivery.objects.get(pk=answer["delivery"])
        assert delivery.outcome == Outcome.REFUSED and delivery.commit == tip
        assert f"points at {tip}" in delivery.detail and claimed in delivery.detail
    assert not Ticket.objects.exists()


@pytest.mark.usefixtures("inline_worker")
def test_a_new_tag_matching_the_pattern_opens_a_ticket_for_the_tag(site, live_server):
    site.project.repo_mode = RepoMode.TAG
    site.project.save()
    webhook, secret = make_hook(site, tag_pattern="v*")
    sha = site.push("v2", V2_TEXT, tag="v2.0")
    site.push("nightly", "nightly build", tag="nightly-7")
    new_tag = push_payload("gitlab", "refs/tags/v2.0", sha, before=ZERO)
    _, answer = deliver(live_server.url, webhook, "gitlab", new_tag, secret)
    delivery = WebhookDelivery.objects.get(pk=answer["delivery"])
    assert delivery.outcome == Outcome.TICKET_OPENED, delivery.detail
    assert (delivery.ticket.ref_kind, delivery.ticket.ref, delivery.ticket.commit) == (RepoMode.TAG, "v2.0", sha)
    nightly = push_payload("gitlab", "refs/tags/nightly-7", site.commits["nightly"], before=ZERO)
    assert deliver(live_server.url, webhook, "gitlab", nightly, secret)[1]["outcome"] == Outcome.IGNORED
    branch = push_payload("gitlab", "refs/heads/master", site.commits["nightly"])
    assert deliver(live_server.url, webhook, "gitlab", branch, secret)[1]["outcome"] == Outcome.IGNORED
    assert Ticket.objects.count() == 1


@pytest.mark.usefixtures("inline_worker")
def test_a_maintainer_who_lost_the_right_opens_no_ticket(site, live_server):
    webhook, secret = make_hook(site, branch="master")
    Membership.objects.filter(user=site.users["maintainer"]).delete()
    sha = site.push("v2", V2_TEXT)
    _, answer = deliver(live_server.url, webhook, "gitea", push_payload("gitea", "refs/heads/master", sha), secret)
    delivery = WebhookDelivery.objects.get(pk=answer["delivery"])
    assert delivery.outcome == Outcome.REFUSED and "may no longer open tickets" in delivery.detail
    assert not Ticket.objects.exists()


@pytest.mark.worker
def test_deploy_at_once_without_approval_is_deployed_by_the_real_worker(site, live_server, qcluster):
    site.project.environment = helpers.environment("test")  # deploys need no approval there
    site.project.save()
    webhook, secret = make_hook(site, branch="master", deploy_at_once=True)
    sha = site.push("v2", V2_TEXT)
    status, answer = deliver(live_server.url, webhook, "github", push_payload("github", "refs/heads/master", sha),
                             secret)
    assert status == 202 and answer["outcome"] == Outcome.QUEUED  # answered before any git work
    delivery = wait_for(lambda: WebhookDelivery.objects.filter(pk=answer["delivery"], ticket__isnull=False).first(),
                        timeout=120)
    ticket = delivery.ticket
    wait_for(lambda: Ticket.objects.filter(pk=ticket.pk, status__in=[S.SUCCEEDED, S.FAILED]).exists(), timeout=180)
    ticket.refresh_from_db()
    delivery.refresh_from_db()
    assert delivery.outcome == Outcome.DEPLOY_QUEUED and ticket.commit == sha
    assert ticket.status == S.SUCCEEDED, ticket.runs.first().error
    assert all(V2_TEXT in page for page in site.pages())


@pytest.mark.usefixtures("inline_worker")
def test_deploy_at_once_on_a_busy_project_leaves_the_ticket_approved_and_says_why(site, live_server):
    site.project.environment = helpers.environment("test")
    site.project.save()
    busy = helpers.make_ticket(site.project, site.users["developer"], status=S.QUEUED, commit=site.commits["v1"])
    webhook, secret = make_hook(site, branch="master", deploy_at_once=True)
    sha = site.push("v2", V2_TEXT)
    _, answer = deliver(live_server.url, webhook, "gitlab", push_payload("gitlab", "refs/heads/master", sha), secret)
    delivery = WebhookDelivery.objects.get(pk=answer["delivery"])
    assert delivery.outcome == Outcome.TICKET_OPENED and delivery.ticket.status == S.APPROVED
    assert f"not deployed at once: Ticket #{busy.pk}" in delivery.detail
    assert not DeployRun.objects.exists()
