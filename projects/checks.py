"""The config check (检测): test a project's setup and pin host keys on first sight."""

from __future__ import annotations

from django.utils import timezone

from accounts.permissions import Action, require
from releases.deploy.checks import CheckReport, check_project
from releases.deploy.plan import Secret, Target
from releases.deploy.ssh import fingerprint

from .keys import key_for
from .models import Host, Project


def run_check(actor, project: Project) -> CheckReport:
    """Run every check; pin the keys of hosts (and the git server) seen for the
    first time, recording who pinned them and when. A changed key is never
    re-pinned here: a Maintainer must unpin it explicitly first."""
    require(actor, Action.CONFIGURE, project)
    hosts = list(project.hosts.filter(enabled=True))
    report = check_project(
        repo_url=project.repo_url, repo_host_key=project.repo_host_key,
        key=Secret(key_for(project).private_key()), workspace=project.effective_workspace,
        run_user=project.run_user, webroot=project.webroot,
        release_library=project.effective_release_library,
        targets=[Target(id=h.pk, address=h.address, port=h.port, host_key=h.host_key) for h in hosts],
        max_parallel=project.max_parallel,
    )
    now = timezone.now()
    for host_id, key_line in report.pinned.items():
        Host.objects.filter(pk=host_id, host_key="").update(
            host_key=key_line, host_key_fingerprint=fingerprint(key_line),
            host_key_pinned_by=actor, host_key_pinned_at=now,
        )
    if report.repo_host_key and not project.repo_host_key:
        Project.objects.filter(pk=project.pk, repo_host_key="").update(repo_host_key=report.repo_host_key)
    return report
