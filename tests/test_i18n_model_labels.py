"""Admin labels of Walle's models are marked for translation (issue 10): every
model's verbose names, every field's verbose name and every choice label is a
lazy translation, not an English default Django derived from a Python name."""

from __future__ import annotations

from django.apps import apps
from django.utils.functional import Promise

WALLE_APPS = {"accounts", "projects", "releases", "audit", "notifications", "webhooks"}
# Language names are shown in their own language, as the switch on every page does.
OWN_NAME_CHOICES = {"accounts.UserPreference.language"}
# Brand names read the same in every language.
BRANDS = {"GitHub", "GitLab", "Gitea"}


def walle_models() -> list:
    return [m for m in apps.get_models() if m._meta.app_label in WALLE_APPS and not m._meta.auto_created]


def unmarked_labels(model) -> list[str]:
    meta, where = model._meta, model._meta.label
    found = [f"{where}: Meta.{name}" for name in ("verbose_name", "verbose_name_plural")
             if not isinstance(meta.original_attrs.get(name), Promise)]
    for field in meta.local_fields + meta.local_many_to_many:
        if field.auto_created:
            continue
        if not isinstance(field.verbose_name, Promise):
            found.append(f"{where}.{field.name}: verbose_name")
        if f"{where}.{field.name}" in OWN_NAME_CHOICES:
            continue
        found += [f"{where}.{field.name}: choice {value!r}" for value, label in field.flatchoices
                  if not isinstance(label, Promise) and label not in BRANDS]
    return found


def test_every_walle_model_field_and_choice_has_a_translatable_label():
    problems = [p for model in walle_models() for p in unmarked_labels(model)]
    assert not problems, "\n".join(problems)


def test_every_ticket_move_reads_as_a_label_on_the_timeline_and_in_the_audit_log():
    from audit.models import AuditEntry
    from releases.models import TicketAction, TicketEvent
    from releases.workflow import TRANSITIONS

    unlabelled = sorted({action for action, _ in TRANSITIONS if action not in TicketAction.values})
    assert not unlabelled, f"add these to releases.models.TicketAction: {unlabelled}"
    for action, _ in TRANSITIONS:
        assert TicketEvent(action=action).get_action_display() == TicketAction(action).label
        assert AuditEntry(action=action).action_display == TicketAction(action).label
