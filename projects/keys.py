"""Walle's own deploy key: generated on first use, stored encrypted."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from releases.deploy.keys import generate_ed25519

from . import crypto
from .models import DeployKey, Project

DEFAULT_KEY_NAME = "walle-default"


def fill_new_key(key: DeployKey) -> DeployKey:
    """Generate an ed25519 pair into an unsaved DeployKey (private half encrypted)."""
    private, key.public_key, key.fingerprint = generate_ed25519(comment=f"walle-{key.name}"[:100])
    key.private_key_encrypted = crypto.encrypt(private)
    return key


def create_key(name: str, *, is_default: bool = False) -> DeployKey:
    key = fill_new_key(DeployKey(name=name, is_default=is_default))
    key.save()
    return key


def default_key() -> DeployKey:
    """The platform key, made the first time anyone needs it."""
    key = DeployKey.objects.filter(is_default=True).first()
    if key:
        return key
    try:
        with transaction.atomic():
            return create_key(DEFAULT_KEY_NAME, is_default=True)
    except IntegrityError:  # another process made it at the same moment
        return DeployKey.objects.get(is_default=True)


def key_for(project: Project) -> DeployKey:
    return project.deploy_key or default_key()
