"""Re-encrypt every stored deploy key and project secret (and every other
``*_encrypted`` field, such as notification channels' URLs and secrets) with the
newest key-encryption key (the first of WALLE_KEY_ENCRYPTION_KEY), so the older
keys can then be dropped from the list."""

from __future__ import annotations

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import models, transaction

from projects.crypto import rotate
from projects.models import DeployKey, ProjectSecret


def other_encrypted_fields() -> list[tuple[type[models.Model], str]]:
    """Encrypted fields of other apps (notification channels...), found by the
    ``*_encrypted`` naming rule, so projects need not import those apps."""
    return [
        (model, field.name)
        for model in apps.get_models() if model not in (DeployKey, ProjectSecret)
        for field in model._meta.concrete_fields if field.name.endswith("_encrypted")
    ]


class Command(BaseCommand):
    help = "Re-encrypt stored deploy keys, project secrets and other *_encrypted fields with the newest key."

    def handle(self, *args, **options) -> None:
        with transaction.atomic():  # all or nothing: a key that fails to decrypt changes no row
            keys = 0
            for key in DeployKey.objects.select_for_update():
                DeployKey.objects.filter(pk=key.pk).update(private_key_encrypted=rotate(key.private_key_encrypted))
                keys += 1
            secrets = 0
            for secret in ProjectSecret.objects.select_for_update():
                ProjectSecret.objects.filter(pk=secret.pk).update(value_encrypted=rotate(secret.value_encrypted))
                secrets += 1
            others = 0
            for model, field in other_encrypted_fields():
                stored = model.objects.select_for_update().exclude(**{field: ""}).values_list("pk", field)
                for pk, token in stored:
                    model.objects.filter(pk=pk).update(**{field: rotate(token)})
                    others += 1
        self.stdout.write(f"Re-encrypted {keys} deploy key(s) and {secrets} project secret(s) with the newest key.")
        if others:
            self.stdout.write(f"Re-encrypted {others} other stored secret(s) (e.g. notification channels).")
        self.stdout.write("Older keys may now be removed from WALLE_KEY_ENCRYPTION_KEY (keep them with old backups).")
