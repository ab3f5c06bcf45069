"""Project secrets for hooks: set and deleted by those who configure the
project, decrypted only where they are used."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from accounts.permissions import Action, require

from . import validators
from .models import Project, ProjectSecret


def set_secret(actor, project: Project, name: str, value: str) -> bool:
    """Add the secret ``name`` or replace its value; True if it is new."""
    require(actor, Action.CONFIGURE, project)
    validators.validate_secret_name(name)
    if not value:
        raise ValidationError(_("A secret needs a value."))
    secret = ProjectSecret.objects.filter(project=project, name=name).first() or ProjectSecret(
        project=project, name=name
    )
    created = secret.pk is None
    secret.set_value(value)
    secret.save()
    return created


def delete_secret(actor, project: Project, name: str) -> bool:
    """Delete the secret ``name``; False if there was none."""
    require(actor, Action.CONFIGURE, project)
    deleted, _ = ProjectSecret.objects.filter(project=project, name=name).delete()
    return bool(deleted)


def secret_env(project: Project) -> dict[str, str]:
    """The project's secrets as environment variables, name -> decrypted value.

    For the worker: hook environments and masking the values in run logs.
    Nothing else should call this; pages and the API show names at most.
    """
    return {secret.name: secret.decrypted() for secret in ProjectSecret.objects.filter(project=project)}
