"""A workspace saved before workspaces had to lie under WALLE_WORKSPACE_ROOT
(where hooks cannot see it) is refused when a deploy or a fetch would use it."""

from __future__ import annotations

import pytest

from projects.models import Project
from releases import fetching, tasks, workflow
from releases.models import DeployRun, RepositoryFetch

PINNED = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


@pytest.fixture
def outside(world, tmp_path):
    Project.objects.filter(pk=world.project.pk).update(workspace=str(tmp_path / "outside-the-root"))
    world.project.refresh_from_db()
    return world.project


@pytest.mark.django_db(transaction=True)
def test_a_deploy_with_a_workspace_outside_the_root_fails_before_anything_runs(world, outside):
    ticket = workflow.submit(world.users["developer"], outside, title="t", ref="master", commit="a" * 40)
    if ticket.status == ticket.Status.PENDING:
        workflow.approve(world.users["owner"], ticket, version=ticket.version)
    run = workflow.deploy(world.users["developer"], ticket)
    tasks.run_deploy(run.pk)
    run.refresh_from_db()
    assert run.status == DeployRun.Status.FAILED
    assert "workspace is not usable" in run.error and "WALLE_WORKSPACE_ROOT" in run.error
    assert run.log_lines.filter(text__contains="workspace is not usable").exists()


def test_a_fetch_with_a_workspace_outside_the_root_is_a_configuration_error(outside):
    Project.objects.filter(pk=outside.pk).update(repo_host_key=PINNED)
    result = fetching.fetch_repository(outside.pk)
    assert result["outcome"] == RepositoryFetch.Outcome.CONFIG and "workspace" in result["error"]
