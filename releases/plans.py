"""Deploy and rollback plans, built from the models for the engine.

The engine takes plain values (``engine.plan``); this module is where the
worker turns a run, its ticket and its project into them: targets with pinned
keys, the hook sandbox, secrets, the release name, the releases to restore.
"""

from __future__ import annotations

import pwd
from datetime import UTC

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext

from engine.health import HealthCheck
from engine.plan import DeployPlan, Hooks, RefKind, RollbackPlan, Secret, Target
from engine.rollout import Rollout, Strategy
from engine.sandbox import BuildUser, SandboxMode, SandboxSpec
from projects import validators
from projects.secrets import secret_env

from . import queries
from .models import DeployRun, Release, Ticket


def _target(host) -> Target:
    return Target(id=host.pk, address=host.address, port=host.port, host_key=host.host_key)


def workspace_problem(project) -> str:
    """Why the project's workspace may not be used (hooks could reach it), or ""."""
    problem = validators.workspace_problem(project.effective_workspace)
    return gettext("refused: the project's workspace is not usable: %(problem)s") % {"problem": problem} if problem else ""


def project_secrets(project) -> tuple[tuple[str, Secret], ...]:
    """The project's hook secrets, decrypted here in the worker only."""
    return tuple((name, Secret(value)) for name, value in sorted(secret_env(project).items()))


def common_values(run: DeployRun, key: Secret, secrets: tuple[tuple[str, Secret], ...]) -> dict:
    ticket = run.ticket
    project = ticket.project
    return dict(
        project=project.slug, environment=project.environment.slug, ticket_id=ticket.pk,
        ticket_title=ticket.title, ref_kind=RefKind(ticket.ref_kind), ref=ticket.ref,
        run_user=project.run_user, webroot=project.webroot,
        release_library=project.effective_release_library,
        hooks=Hooks(*(project.hook_lines(n) for n in ("pre_deploy", "post_deploy", "pre_release", "post_release"))),
        post_release_delay=project.post_release_delay, max_parallel=project.max_parallel, key=key,
        command_timeout=settings.WALLE_COMMAND_TIMEOUT,
        deployed_by=run.triggered_by.get_username() if run.triggered_by else "",
        sandbox=hook_sandbox(), secrets=secrets,
    )


def hook_sandbox() -> SandboxSpec:
    """Hide Walle's data dir and every workspace (mirrors included) from
    deploy-host hooks; as root, run them as the unprivileged build user."""
    return SandboxSpec(
        mode=SandboxMode(settings.WALLE_HOOK_SANDBOX),
        hide=(str(settings.DATA_DIR), str(settings.WALLE_WORKSPACE_ROOT)),
        build_user=build_user(),
        network=settings.WALLE_HOOK_NETWORK,
    )


def build_user() -> BuildUser:
    """The account named by WALLE_BUILD_USER (the system check reports a missing one)."""
    try:
        entry = pwd.getpwnam(settings.WALLE_BUILD_USER)
    except KeyError:
        # Never silently "nobody": uid 0 is refused by the sandbox with a clear message.
        return BuildUser(uid=0, gid=0)
    return BuildUser(uid=entry.pw_uid, gid=entry.pw_gid)


def release_name_for(run: DeployRun) -> str:
    # UTC: local time can go backwards (DST), and keep-N sorts by name.
    started = (run.started_at or timezone.now()).astimezone(UTC)
    return f"{started:%Y%m%d-%H%M%S}-{run.ticket_id}"


def rollout_for(ticket: Ticket) -> Rollout:
    """The ticket's rollout (its own strategy if it picked one) with the project's sizes."""
    project = ticket.project
    return Rollout(
        strategy=Strategy(ticket.rollout_strategy or project.rollout_strategy), canary=project.canary_hosts,
        batch_size=project.batch_size, batch_percent=project.batch_percent, promote=project.promote_required,
    )


def health_check_for(project) -> HealthCheck:
    return HealthCheck(
        path=project.health_path, port=project.health_port, host_header=project.health_host_header,
        expected_status=project.health_status, expected_text=project.health_text,
        timeout=project.health_timeout, retries=project.health_retries, command=project.health_command,
    )


def build_deploy_plan(run: DeployRun, hosts, key: Secret, secrets: tuple = ()) -> DeployPlan:
    project = run.ticket.project
    # A retry takes its failed run's release: the same name (so complete
    # copies are reused) and the same commit (so they still match).
    earlier = run.resumes
    return DeployPlan(
        **common_values(run, key, secrets), repo_url=project.repo_url, repo_host_key=project.repo_host_key,
        commit=earlier.commit if earlier else run.ticket.commit, workspace=project.effective_workspace,
        excludes=project.exclude_lines, compress=project.compress_transfer,
        release_name=earlier.release_name if earlier else release_name_for(run), keep_releases=project.keep_releases,
        targets=tuple(_target(h) for h in hosts), known_releases=known_releases(project),
        rollout=rollout_for(run.ticket), health=health_check_for(project),
        keep_prepared=True, reuse_prepared=earlier is not None,
        done_targets=queries.finished_hosts(earlier) if earlier else frozenset(),
    )


def known_releases(project) -> frozenset[str]:
    """Releases of the project that went live or whose deploy succeeded; any
    other Walle-named dir on a host is a leftover of an interrupted run."""
    proper = Q(switched_at__isnull=False) | Q(run__status=DeployRun.Status.SUCCEEDED)
    names = Release.objects.filter(proper, project=project, removed_at__isnull=True).values_list("name", flat=True)
    return frozenset(names)


def rollback_releases(ticket: Ticket, hosts) -> list[tuple[object, str]]:
    """Per host, the release to restore: the named one, or what was live
    before the ticket being rolled back (empty when there was nothing)."""
    if ticket.rollback_release:
        return [(h, ticket.rollback_release) for h in hosts]
    previous = queries.releases_before(ticket.rollback_of)
    return [(h, previous.get(h.pk, "")) for h in hosts]


def build_rollback_plan(run: DeployRun, hosts, key: Secret, secrets: tuple = ()) -> RollbackPlan:
    pairs = rollback_releases(run.ticket, hosts)
    return RollbackPlan(
        **common_values(run, key, secrets), commit=run.ticket.commit,
        releases=tuple((_target(h), name) for h, name in pairs),
    )
