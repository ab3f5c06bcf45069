"""Audit entries are append-only for everyone: the model, the admin (even for
superusers) and, where the database offers triggers, the database refuse to
change or delete one; nothing that deletes other rows takes entries along."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from audit import guard
from audit.models import AppendOnlyError, AuditEntry, Kind
from releases import retention
from releases.models import DeployRun, LogLine, Ticket

from . import helpers


def an_entry(world) -> AuditEntry:
    world.project.hosts.add(helpers.make_host("10.2.2.2"))
    return AuditEntry.objects.filter(kind=Kind.PROJECT).latest("id")


def test_the_model_refuses_to_save_an_existing_entry_or_delete_one(world):
    entry = an_entry(world)
    entry.note = "rewritten"
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.delete()
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.filter(pk=entry.pk).update(note="rewritten")
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.filter(pk=entry.pk).delete()
    assert AuditEntry.objects.get(pk=entry.pk).note == ""


@pytest.mark.parametrize("sql", [
    "UPDATE audit_auditentry SET note = 'rewritten' WHERE id = %s",
    "DELETE FROM audit_auditentry WHERE id = %s",
])
def test_the_database_refuses_raw_updates_and_deletes(world, sql):
    if not guard.has_guard(connection):
        pytest.skip(f"{connection.vendor} has no trigger guard")
    entry = an_entry(world)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [entry.pk])
    assert AuditEntry.objects.get(pk=entry.pk).note == ""


def test_superusers_cannot_add_change_or_delete_entries_in_the_admin(world, client):
    entry = an_entry(world)
    client.force_login(world.users["admin"])
    base = "/admin/audit/auditentry/"
    assert client.get(f"{base}add/").status_code == 403
    assert client.get(f"{base}{entry.pk}/delete/").status_code == 403
    assert client.post(f"{base}{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    listing = client.get(base)
    assert listing.status_code == 200 and "10.2.2.2" in listing.content.decode()
    assert 'name="action"' not in listing.content.decode()  # no bulk actions, so no "delete selected"
    detail = client.get(f"{base}{entry.pk}/change/")
    assert detail.status_code == 200 and 'name="_save"' not in detail.content.decode()
    client.post(f"{base}{entry.pk}/change/", {"note": "rewritten"})
    assert AuditEntry.objects.get(pk=entry.pk).note == ""


def test_deleting_what_an_entry_names_keeps_the_entry(world):
    ticket = helpers.make_ticket(world.other_project, world.users["outsider"])
    project_pk = world.other_project.pk
    entries = set(AuditEntry.objects.filter(project_id=world.other_project.pk).values_list("pk", flat=True))
    assert entries
    ticket.delete()
    world.other_project.delete()
    world.users["outsider"].delete()
    kept = AuditEntry.objects.filter(pk__in=entries)
    assert kept.count() == len(entries)
    assert {e.project_name for e in kept} == {"billing"}
    deleted = AuditEntry.objects.get(kind=Kind.PROJECT, action="deleted", object_id=str(project_pk))
    assert deleted.changes["slug"] == ["billing", None]


def test_log_retention_never_touches_audit_entries(world, settings):
    settings.WALLE_LOG_RETENTION_DAYS = 30
    ticket = helpers.make_ticket(world.project, world.users["developer"], Ticket.Status.SUCCEEDED)
    ended = timezone.now() - timedelta(days=400)
    run = DeployRun.objects.create(ticket=ticket, number=1, status=DeployRun.Status.SUCCEEDED, finished_at=ended)
    LogLine.objects.create(run=run, seq=1, stage="transfer", stream="stdout", text="old line")
    before = list(AuditEntry.objects.order_by("id").values_list("id", "changes"))
    assert "removed 1 log lines of 1 runs" in retention.prune_logs()
    assert list(AuditEntry.objects.order_by("id").values_list("id", "changes")) == before


@pytest.mark.django_db(transaction=True)
def test_flush_empties_the_log_and_puts_the_guard_back(world):
    an_entry(world)
    call_command("flush", interactive=False, verbosity=0)
    assert AuditEntry.objects.count() == 0
    helpers.make_host("10.3.3.3")  # a new entry, to try the guard on
    entry = AuditEntry.objects.get()
    if guard.has_guard(connection):
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("DELETE FROM audit_auditentry WHERE id = %s", [entry.pk])
    assert AuditEntry.objects.filter(pk=entry.pk).exists()
