"""Rotating the key-encryption key: one command re-encrypts every stored key
and secret with the newest key, after which the old key can go."""

from __future__ import annotations

import io

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import call_command

from projects.keys import create_key
from projects.models import DeployKey, ProjectSecret
from projects.secrets import secret_env, set_secret


def test_rotation_re_encrypts_keys_and_secrets_so_the_old_key_can_go(world, settings):
    old = settings.WALLE_KEY_ENCRYPTION_KEYS[0]
    key = create_key("rotating")
    set_secret(world.users["maintainer"], world.project, "API_TOKEN", "s3cret-value")
    private = key.private_key()
    new = Fernet.generate_key().decode()
    settings.WALLE_KEY_ENCRYPTION_KEYS = [new, old]
    out = io.StringIO()
    call_command("walle_rotate_keys", stdout=out)
    assert "Re-encrypted" in out.getvalue()
    settings.WALLE_KEY_ENCRYPTION_KEYS = [new]  # the old key is gone
    assert DeployKey.objects.get(pk=key.pk).private_key() == private
    assert secret_env(world.project) == {"API_TOKEN": "s3cret-value"}


def test_rotation_with_a_key_missing_changes_nothing(world, settings):
    key = create_key("rotating")
    before = DeployKey.objects.get(pk=key.pk).private_key_encrypted
    settings.WALLE_KEY_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # the old key was lost
    with pytest.raises(InvalidToken):
        call_command("walle_rotate_keys", stdout=io.StringIO())
    assert DeployKey.objects.get(pk=key.pk).private_key_encrypted == before
    assert ProjectSecret.objects.count() == 0
