from django.db import migrations

DEFAULTS = [
    # name, slug, order, deploy approval, rollback approval, self-approval
    ("test", "test", 10, False, False, True),
    ("staging", "staging", 20, True, False, True),
    ("production", "production", 30, True, False, False),
]


def create(apps, schema_editor):
    Environment = apps.get_model("projects", "Environment")
    for name, slug, order, deploy, rollback, self_ok in DEFAULTS:
        Environment.objects.get_or_create(
            slug=slug,
            defaults=dict(
                name=name, order=order, deploy_needs_approval=deploy,
                rollback_needs_approval=rollback, allow_self_approval=self_ok,
            ),
        )


class Migration(migrations.Migration):
    dependencies = [("projects", "0001_initial")]
    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
