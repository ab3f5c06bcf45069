"""The walkthrough, end to end through Walle's models, workflow and task,
against three real sshd hosts serving the webroot through nginx."""

from __future__ import annotations

import os

import pytest
from django.db import connection

from releases import workflow
from releases.models import DeployRun, LogLine, Release, RunHost, Ticket
from tests.deploy_fixtures import V1_TEXT, V2_TEXT, deploy_now, open_approved_ticket

pytestmark = pytest.mark.sshd


def test_first_deploy_second_deploy_and_rollback_on_every_host(site):
    first = open_approved_ticket(site, "v1")
    run = deploy_now(site.users["developer"], first)
    assert run.status == DeployRun.Status.SUCCEEDED, run.error
    assert all(V1_TEXT in page for page in site.pages())
    first_release = run.release_name
    assert all(t.readlink("/data/nginx/website").endswith(first_release) for t in site.targets)

    site.push("v2", V2_TEXT)
    second = open_approved_ticket(site, "v2")
    run2 = deploy_now(site.users["developer"], second)
    assert run2.status == DeployRun.Status.SUCCEEDED, run2.error
    assert all(V2_TEXT in page for page in site.pages())
    assert set(RunHost.objects.filter(run=run2).values_list("previous_release", flat=True)) == {first_release}

    rollback = workflow.request_rollback(site.users["maintainer"], second)
    assert rollback.status == Ticket.Status.APPROVED  # production: rollbacks need no approval by default
    run3 = deploy_now(site.users["maintainer"], rollback)
    assert run3.status == DeployRun.Status.SUCCEEDED, run3.error
    assert all(V1_TEXT in page for page in site.pages())
    live = set(Release.objects.filter(project=site.project, is_live=True).values_list("name", flat=True))
    assert live == {first_release}
    assert first.commit == Release.objects.get(project=site.project, host=site.host_records[0], name=first_release).commit


def test_log_lines_carry_host_and_stage_and_never_the_private_key(site, deploy_key):
    site.project.post_release = 'echo "deployed by $WALLE_DEPLOY_USER"'
    site.project.save()
    run = deploy_now(site.users["developer"], open_approved_ticket(site, "v1"))
    assert run.status == DeployRun.Status.SUCCEEDED, run.error
    lines = list(LogLine.objects.filter(run=run).order_by("seq"))
    assert [line.seq for line in lines] == list(range(1, len(lines) + 1))
    stages = {line.stage for line in lines}
    assert {"checkout", "transfer", "switch"} <= stages
    assert {t.address for t in site.targets} <= {line.host.split(":")[0] for line in lines if line.host}
    body = "\n".join(line.text for line in lines)
    assert sorted(ln.host for ln in lines if ln.text == "deployed by developer") == sorted(t.address for t in site.targets)
    private = deploy_key.private_key()
    assert private.splitlines()[1] not in body
    assert "PRIVATE KEY" not in body


def test_keep_n_is_recorded_so_removed_releases_are_not_offered(site):
    site.project.keep_releases = 2
    site.project.save()
    names = []
    for n in range(3):
        label = f"v{n + 1}"
        if n:
            site.push(label, f"version {n + 1}")
        run = deploy_now(site.users["developer"], open_approved_ticket(site, label))
        assert run.status == DeployRun.Status.SUCCEEDED, run.error
        names.append(run.release_name)
    on_disk = {p.name for p in site.targets[0].data_path(site.project.effective_release_library).iterdir()}
    assert on_disk == set(names[1:])
    kept = set(workflow.kept_releases(site.project).values_list("name", flat=True))
    assert kept == set(names[1:])
    assert Release.objects.get(project=site.project, host=site.host_records[0], name=names[0]).removed_at


def test_build_hooks_run_sandboxed_away_from_walles_secrets(site, settings):
    secret_file = settings.DATA_DIR / "secret_key"
    assert secret_file.exists() and os.path.exists(connection.settings_dict["NAME"])  # there to be hidden
    site.project.pre_deploy = f"cat {secret_file} 2>/dev/null || echo 'secret key hidden'"
    site.project.post_deploy = "\n".join([
        "echo built-on-the-deploy-host > built.txt",
        f"ls {connection.settings_dict['NAME']} 2>/dev/null || echo 'database hidden'",
    ])
    site.project.save()
    run = deploy_now(site.users["developer"], open_approved_ticket(site, "v1"))
    assert run.status == DeployRun.Status.SUCCEEDED, run.error
    texts = list(run.log_lines.values_list("text", flat=True))
    assert "secret key hidden" in texts and "database hidden" in texts
    assert secret_file.read_text().strip() not in "\n".join(texts)
    assert all(t.http_get("/built.txt").strip() == "built-on-the-deploy-host" for t in site.targets)
