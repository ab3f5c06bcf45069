"""Plain functions that build test data (no factory library)."""

from __future__ import annotations

import itertools

from django.contrib.auth import get_user_model

from accounts.models import Membership, Role, Team
from projects.environments import ensure_defaults
from projects.models import Environment, Host, Project
from releases.models import Ticket, TicketAction, TicketEvent

_seq = itertools.count(1)
PASSWORD = "correct-horse-battery-staple-42"


def make_user(username: str, *, superuser: bool = False):
    User = get_user_model()
    if superuser:
        return User.objects.create_superuser(username, f"{username}@example.com", PASSWORD)
    return User.objects.create_user(username, f"{username}@example.com", PASSWORD)


def make_team(name: str = "") -> Team:
    return Team.objects.create(name=name or f"team-{next(_seq)}")


def add_member(user, team: Team, role: Role) -> Membership:
    return Membership.objects.create(user=user, team=team, role=role)


def environment(slug: str = "production") -> Environment:
    # transactional tests flush the table the data migration filled
    ensure_defaults()
    return Environment.objects.get(slug=slug)


def make_host(address: str = "", port: int = 22, **kw) -> Host:
    return Host.objects.create(address=address or f"10.0.0.{next(_seq)}", port=port, **kw)


def make_project(team: Team, env: str = "production", hosts=None, **kw) -> Project:
    n = next(_seq)
    values = dict(
        name=f"website-{n}", slug=f"website-{n}", repo_url="ssh://git@127.0.0.10/srv/git/website.git",
        webroot="/data/nginx/website",
    )
    values.update(kw)
    project = Project.objects.create(team=team, environment=environment(env), **values)
    project.hosts.set(hosts if hosts is not None else [make_host()])
    return project


def make_ticket(project: Project, author, status: str = Ticket.Status.PENDING, **kw) -> Ticket:
    """A ticket in a given status, as test setup (the workflow is tested on its own)."""
    values = dict(title=f"release {next(_seq)}", ref="master", commit="a" * 40)
    values.update(kw)
    ticket = Ticket.objects.create(project=project, author=author, status=status, **values)
    ticket.hosts.set(project.hosts.all())
    TicketEvent.objects.create(ticket=ticket, actor=author, action=TicketAction.SUBMIT, to_status=status)
    return ticket
