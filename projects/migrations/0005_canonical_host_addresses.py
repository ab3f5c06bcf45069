"""Store every host address in its canonical form, so comparing Host records
compares machines (see projects.validators.canonical_address)."""

import sys

from django.core.exceptions import ValidationError
from django.db import migrations


def canonicalise(apps, schema_editor):
    from projects.validators import canonical_address

    Host = apps.get_model("projects", "Host")
    for host in Host.objects.order_by("pk"):
        try:
            canonical = canonical_address(host.address)
        except ValidationError:
            continue  # was never valid; the next edit of it reports why
        if canonical == host.address:
            continue
        twin = Host.objects.filter(address__iexact=canonical, port=host.port).exclude(pk=host.pk).first()
        if twin is not None:
            # Two records for one machine: which projects belong where is a
            # human decision. Say so instead of guessing.
            sys.stderr.write(
                f"\n  host {host.pk} ({host.address}:{host.port}) is the same machine as host {twin.pk} "
                f"({twin.address}:{twin.port}); link its projects to one of them in the admin and delete the other.\n"
            )
            continue
        # Same machine, same pinned key: only the spelling changes.
        Host.objects.filter(pk=host.pk).update(address=canonical)


class Migration(migrations.Migration):

    dependencies = [
        ("projects", "0004_group_keys_secrets_workspace"),
    ]

    operations = [
        migrations.RunPython(canonicalise, migrations.RunPython.noop),
    ]
