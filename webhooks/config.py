"""Setting up a project's webhook: only those who configure the project may,
and the secret is returned to them exactly once."""

from __future__ import annotations

from accounts.permissions import Action, require

from .models import ProjectWebhook


def save_settings(actor, hook: ProjectWebhook) -> str:
    """Save ``hook`` as configured by ``actor``, who tickets are then opened as.
    A new webhook gets its secret here; returns it ("" for an existing one)."""
    require(actor, Action.CONFIGURE, hook.project)
    hook.acts_as = actor
    secret = hook.new_secret() if hook.pk is None else ""
    hook.save()
    return secret


def regenerate_secret(actor, hook: ProjectWebhook) -> str:
    """Replace the secret; the old one stops working at once. Returns the new one."""
    require(actor, Action.CONFIGURE, hook.project)
    secret = hook.new_secret()
    hook.save(update_fields=["secret_encrypted", "updated_at"])
    return secret
