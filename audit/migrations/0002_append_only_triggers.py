"""Triggers that abort UPDATE and DELETE of audit entries (audit.guard), per
database vendor; a database without triggers gets none."""

from django.db import migrations

from audit import guard


def install(apps, schema_editor) -> None:
    guard.install(schema_editor.connection)


def remove(apps, schema_editor) -> None:
    guard.remove(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(install, remove)]
