"""Deploy keys: one per group, generated on first use, stored encrypted.

A project logs in with the key chosen for it, else with its group's key. The
platform key is never used implicitly: a host or repository trusts a group's
key only, so a Maintainer of one group cannot reach another group's hosts or
repositories by pointing a project at them.
"""

from __future__ import annotations

import re

from django.db import IntegrityError, transaction
from django.utils.text import slugify

from accounts.models import Team
from engine.keys import generate_ed25519

from . import crypto
from .models import DeployKey, Project

DEFAULT_KEY_NAME = "walle-default"
# What engine.keys allows in an authorized_keys comment.
_COMMENT_UNSAFE_RE = re.compile(r"[^A-Za-z0-9._@+=:-]+")


def fill_new_key(key: DeployKey) -> DeployKey:
    """Generate an ed25519 pair into an unsaved DeployKey (private half encrypted)."""
    # The comment names the key in authorized_keys files; key names may hold
    # spaces or other characters a comment may not.
    comment = _COMMENT_UNSAFE_RE.sub("-", f"walle-{key.name}")[:100]
    private, key.public_key, key.fingerprint = generate_ed25519(comment=comment)
    key.private_key_encrypted = crypto.encrypt(private)
    return key


def create_key(name: str, *, team: Team | None = None, is_default: bool = False) -> DeployKey:
    key = fill_new_key(DeployKey(name=name, team=team, is_default=is_default))
    key.save()
    return key


def _get_or_create_default(team: Team | None, name: str) -> DeployKey:
    existing = DeployKey.objects.filter(team=team, is_default=True).first()
    if existing:
        return existing
    try:
        with transaction.atomic():
            return create_key(name, team=team, is_default=True)
    except IntegrityError:  # another process made it at the same moment
        return DeployKey.objects.get(team=team, is_default=True)


def default_key() -> DeployKey:
    """The platform key, made the first time anyone needs it. Only a platform
    admin gives it to a project; nothing falls back to it."""
    return _get_or_create_default(None, DEFAULT_KEY_NAME)


def team_key(team: Team) -> DeployKey:
    """The group's own key. Created with the group in the admin; groups made
    any other way (or before keys were per group) get theirs on first use."""
    return _get_or_create_default(team, f"group-{team.pk}-{slugify(team.name)}".rstrip("-")[:100])


def key_for(project: Project) -> DeployKey:
    """The key ``project`` logs in with: its own chosen key, else its group's."""
    return project.deploy_key or team_key(project.team)
