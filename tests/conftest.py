"""Shared fixtures: one team with a member of every role, an outsider, a
per-project grantee and a platform admin, all around one production project."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from accounts.models import Role

from . import helpers

pytest_plugins = ["tests.infra.plugin", "tests.deploy_fixtures"]


@dataclass
class World:
    team: object
    other_team: object
    project: object
    other_project: object
    users: dict


PERSONAS = ["guest", "reporter", "developer", "maintainer", "owner", "outsider", "granted", "admin"]
ROLE_OF = {
    "guest": Role.GUEST, "reporter": Role.REPORTER, "developer": Role.DEVELOPER,
    "maintainer": Role.MAINTAINER, "owner": Role.OWNER,
}


@pytest.fixture
def world(db) -> World:
    team = helpers.make_team("web")
    other_team = helpers.make_team("payments")
    project = helpers.make_project(team, name="website", slug="website")
    other_project = helpers.make_project(other_team, name="billing", slug="billing")
    users = {name: helpers.make_user(name, superuser=(name == "admin")) for name in PERSONAS}
    for name, role in ROLE_OF.items():
        helpers.add_member(users[name], team, role)
    # The outsider is a Maintainer elsewhere: power in one team must not leak.
    helpers.add_member(users["outsider"], other_team, Role.MAINTAINER)
    return World(team, other_team, project, other_project, users)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Argon2 is right for production and far too slow for hundreds of test users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Login throttling has its own tests (test_login_throttling.py); elsewhere
    # it would only count the suite's own logins.
    settings.AXES_ENABLED = False
